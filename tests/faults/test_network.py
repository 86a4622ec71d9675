"""Network faults (issue 16): a fault proxy (lectern_dev.harness.faultproxy) between chat and
retrieval, and between the gateway and chat, while readers keep asking through the gateway.

The path under test is its own: a second gateway whose CHAT_URL is a proxy in front of chat,
whose RETRIEVAL_URL is another proxy in front of retrieval. Nothing else goes through the
proxies: the stack's own gateway reaches chat and retrieval directly (to ingest the sample book,
to read what was stored, to resume a stream once the fault is over).

For each hop and each fault (300 ms each way, connection resets, a black hole), a few seconds of
normal load, the fault for FAULT_S, then the way open again, and:
- no request outlives the client's timeout: the services' own timeouts end it;
- every stream the client opened ends with `done` or `error`, if need be through a resume
  (Last-Event-ID, as the reader page does) once the network lets it;
- every `done` the client saw is stored complete, with the text and sources it showed;
- normal answers come back within RECOVERY_BOUND_S of the fault ending, no hand restart, and
  stay back.
Each case prints one line: `fault=<case> requests=N done=N errors={kind: n} recovery_s=X`.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from lectern_dev.harness.books import ingest_book
from lectern_dev.harness.chat import Answer, stored_answer
from lectern_dev.harness.faultproxy import FaultProxy
from lectern_dev.harness.gateways import Gateway, start_gateway
from lectern_dev.harness.replicas import wait_for_http
from lectern_dev.harness.services import gateway_client, routed
from lectern_dev.harness.sse import parse
from lectern_dev.stack import Ports, Process, Stack, StackConfig

pytestmark = pytest.mark.faults

READERS = 12
WARM_S = 2.0  # normal load before the fault
FAULT_S = 6.0
HOLD_S = 2.0  # after the first normal answer, how long answers must stay normal
# Chat gives up on retrieval after CHAT_RETRIEVAL_TIMEOUT_S, its breaker retries after
# INTERNAL_BREAKER_COOLDOWN_S (held there, not doubled): normal answers are back within both and
# one answer's time.
RETRIEVAL_TIMEOUT_S = 4.0
BREAKER_COOLDOWN_S = 5.0
RECOVERY_BOUND_S = 15.0
STREAM_MAX_S = 20  # no answer runs longer (chat ends it with `error answer_too_long`)
# The gateway answers 504 when chat has not started answering in this long (dynamic.yml).
HEADER_TIMEOUT_S = 5
# Chat sends a comment on a stream silent this long, so a client can tell a stream cut off
# somewhere on the way from a slow one: the reader page gives up on a stream silent for 4
# keep-alives (60 s for 15 s) and resumes it; so do these readers.
KEEPALIVE_S = 2
CLIENT_IDLE_S = 4 * KEEPALIVE_S
CLIENT_TIMEOUT_S = 30.0  # past every service bound above: reaching it is a hang
RESUME_DELAYS_S = (0.5, 1.5, 4.0)  # web/chat.js's RESUME_DELAYS_MS
# Worded close to the book, so that its search (on the fake Gemini's bag-of-words embeddings)
# judges them covered and the answers come from the model, token by token.
QUESTIONS = (
    "What is a topic in ROS 2 and when should I use a topic instead of a service?",
    "How do I simulate a robot in Gazebo and bridge its topics to ROS 2?",
    "How does the controller keep the humanoid robot balanced while it walks?",
    "How do I describe a robot with URDF links and joints?",
)
ENV = {
    # Every reader asks from 127.0.0.1, as guests; the gateway counts in its own memory, not in
    # buckets of the shared Redis that other stacks' gateways draw on too.
    "GATEWAY_REDIS_ENDPOINTS": "",
    "RATE_STREAM_PER_MIN": "100000",
    "RATE_STREAM_BURST": "10000",
    "RATE_API_PER_S": "10000",
    "RATE_API_BURST": "10000",
    "CHAT_MAX_OPEN_STREAMS": "10",
    "CHAT_MAX_OPEN_STREAMS_PER_ADDRESS": "1000",
    "CHAT_STREAM_MAX_S": str(STREAM_MAX_S),
    "CHAT_RETRIEVAL_TIMEOUT_S": str(RETRIEVAL_TIMEOUT_S),
    "INTERNAL_BREAKER_COOLDOWN_S": str(BREAKER_COOLDOWN_S),
    "INTERNAL_BREAKER_MAX_COOLDOWN_S": str(BREAKER_COOLDOWN_S),
    "GATEWAY_CHAT_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
    "CHAT_SSE_KEEPALIVE_S": str(KEEPALIVE_S),
}


@dataclass
class Hops:
    """gateway-faults -> chat proxy -> chat -> retrieval proxy -> retrieval."""

    stack: Stack
    gateway: Gateway
    chat_proxy: FaultProxy
    retrieval_proxy: FaultProxy


@pytest.fixture(scope="module")
def hops(session_dir: pathlib.Path, redis_prefix: str) -> Iterator[Hops]:
    """The stack (retrieval, profile; no auth server nor summary: the readers are guests) with
    a PostgreSQL of its own: the shared server runs near its connection limit while the rest of
    the suite runs, and its TooManyConnections must not pass for a network fault here. Chat is
    started once, on the stack's chat port, with only its RETRIEVAL_URL on the proxy, so the
    stack's gateway reaches it directly and the second gateway through the chat proxy."""
    config = StackConfig(
        data_dir=session_dir / "faults-net",
        ports=Ports.random(),
        redis_url=os.environ.get("REDIS_URL") or None,
        redis_prefix=f"{redis_prefix}faults-net:",
        fake_gemini=True,
        extra_env=ENV,
        services=("retrieval", "profile"),
        with_auth=False,
    )
    stack = Stack(config)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(stack.stop)
        retrieval_proxy = cleanup.enter_context(FaultProxy("127.0.0.1", config.ports.retrieval))
        stack.start()
        stack.processes["chat"] = Process(
            "chat",
            [sys.executable, "-m", "lectern_chat"],
            env={**stack.env_of("chat"), "RETRIEVAL_URL": retrieval_proxy.url},
            log=stack.logs / "chat.log",
        )
        ingest_book(stack)
        # Answers that stream for a moment (~10 chunks), so faults also meet them half way.
        httpx.post(f"{config.url('fake_gemini')}/_fake/config", json={"token_interval_ms": 60})
        wait_for_http(f"{config.url('chat')}/ready", stack.processes["chat"], timeout_s=90)
        routed(stack, ("/api/chat/health",))
        chat_proxy = cleanup.enter_context(FaultProxy("127.0.0.1", config.ports.chat))
        gateway = start_gateway(stack, "gateway-faults", env={"CHAT_URL": chat_proxy.url})
        cleanup.callback(gateway.stop)
        yield Hops(stack, gateway, chat_proxy, retrieval_proxy)


# ---- one reader's requests, as the reader page makes them ------------------------------------
class _TooLate(Exception):
    pass


@dataclass
class Result:
    started: float
    ended: float = 0.0
    # done, an error event's code, http_<status>_<code>, cut, stalled, client_timeout...
    kind: str = ""
    answer: Answer = field(default_factory=lambda: Answer(status=0, headers=httpx.Headers()))
    guest: dict[str, str] = field(default_factory=dict)
    resumes: int = 0

    @property
    def message_id(self) -> str | None:
        metas = self.answer.named("meta")
        return metas[0].data["message_id"] if metas else None

    @property
    def ended_with_event(self) -> bool:
        return bool(self.answer.events) and self.answer.last.event in ("done", "error")


def _until(lines: Iterator[str], deadline: float) -> Iterator[str]:
    for line in lines:
        if time.monotonic() > deadline:
            raise _TooLate
        yield line


def _read(client: httpx.Client, method: str, url: str, result: Result, **kwargs) -> str:
    """One request of an answer (the stream or a resume), its events added to the result's;
    what it ended as."""
    answer = result.answer
    deadline = time.monotonic() + CLIENT_TIMEOUT_S
    opened = False
    timeout = httpx.Timeout(CLIENT_TIMEOUT_S, read=CLIENT_IDLE_S)
    try:
        with client.stream(method, url, timeout=timeout, **kwargs) as response:
            if response.status_code != 200:
                response.read()
                try:
                    body = response.json()
                    code = body.get("code") or body.get("error", {}).get("code")
                except ValueError:
                    code = None
                return f"http_{response.status_code}" + (f"_{code}" if code else "")
            answer.status, opened = 200, True
            for event in parse(_until(response.iter_lines(), deadline)):
                answer.events.append(event)
                answer.arrived.append(time.monotonic())
    except httpx.TimeoutException:
        # Silent past the idle limit once streaming: the reader resumes. Before the status
        # line: the gateway's own limit should have answered first.
        return "stalled" if opened and answer.events else "client_timeout"
    except _TooLate:
        return "client_timeout"
    except httpx.TransportError as exc:
        if not answer.events:
            return f"transport_{type(exc).__name__}"
    if not answer.events:
        return "cut"
    last = answer.last
    if last.event == "done":
        return "done"
    if last.event == "error":
        return str(last.data.get("code"))
    return "cut"


def ask(client: httpx.Client, guest: dict[str, str], question: str) -> Result:
    """Ask, and follow a stream cut short through the resume route like web/chat.js does."""
    result = Result(started=time.monotonic(), guest=dict(guest))
    result.kind = _read(
        client, "POST", "/api/chat/stream", result, json={"message": question}, headers=guest
    )
    if metas := result.answer.named("meta"):
        if token := metas[0].data.get("guest_token"):
            result.guest = {"x-guest-token": token}
    while result.kind in ("cut", "stalled") and result.message_id:
        if result.resumes == len(RESUME_DELAYS_S):
            break
        time.sleep(RESUME_DELAYS_S[result.resumes])
        result.resumes += 1
        last_id = str(result.answer.last.id)
        result.kind = _read(
            client,
            "GET",
            f"/api/chat/messages/{result.message_id}/events",
            result,
            headers={**result.guest, "last-event-id": last_id},
        )
    result.ended = time.monotonic()
    return result


class Load:
    """READERS guests asking in a loop through `url` until stopped (a pause after a failure,
    as a person would take before asking again)."""

    def __init__(self, url: str) -> None:
        self.url, self.results, self._stop = url, [], threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._reader, args=(i,)) for i in range(READERS)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(CLIENT_TIMEOUT_S * (len(RESUME_DELAYS_S) + 2))

    def _reader(self, i: int) -> None:
        guest: dict[str, str] = {}
        with httpx.Client(base_url=self.url) as client:
            n = i
            while not self._stop.is_set():
                result = ask(client, guest, QUESTIONS[n % len(QUESTIONS)])
                n += 1
                guest = result.guest
                with self._lock:
                    self.results.append(result)
                if result.kind != "done":
                    self._stop.wait(0.5)

    def snapshot(self) -> list[Result]:
        with self._lock:
            return list(self.results)


# ---- the cases --------------------------------------------------------------------------------
def _first_normal(results: list[Result], since: float) -> Result | None:
    """The first answer asked after `since` to end `done`, by when it ended."""
    normal = [r for r in results if r.started >= since and r.kind == "done"]
    return min(normal, key=lambda r: r.ended, default=None)


def run_case(hops: Hops, proxy: FaultProxy, fault: Callable[[FaultProxy], None]) -> dict:
    with Load(hops.gateway.url) as load:
        time.sleep(WARM_S)
        fault(proxy)
        time.sleep(FAULT_S)
        proxy.passthrough()
        fault_ended = time.monotonic()
        deadline = fault_ended + RECOVERY_BOUND_S
        while (first := _first_normal(load.snapshot(), fault_ended)) is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        time.sleep(HOLD_S)
    results = load.results
    return {
        "results": results,
        "recovery_s": None if first is None else first.ended - fault_ended,
        "recovered_at": None if first is None else first.ended,
    }


def check(stack: Stack, name: str, outcome: dict, capsys: pytest.CaptureFixture[str]) -> None:
    results: list[Result] = outcome["results"]
    kinds = Counter(r.kind for r in results)
    # A stream that lost its way after the reader page's resumes: resume it once more now that
    # the way is open (through the stack's own gateway): its last event must be there.
    with gateway_client(stack, timeout=CLIENT_TIMEOUT_S) as client:
        late = [r for r in results if r.message_id and not r.ended_with_event]
        for r in late:
            r.kind = _read(
                client,
                "GET",
                f"/api/chat/messages/{r.message_id}/events",
                r,
                headers={**r.guest, "last-event-id": str(r.answer.last.id)},
            )
        done = [r for r in results if r.kind == "done"]  # late resumes included
        errors = {k: n for k, n in sorted(kinds.items()) if k != "done"}
        recovery = outcome["recovery_s"]
        with capsys.disabled():
            print(
                f"\nfault={name} requests={len(results)} done={kinds['done']} errors={errors} "
                f"recovery_s={'none' if recovery is None else f'{recovery:.1f}'} "
                f"resumed={sum(r.resumes > 0 for r in results)} late_resumes={len(late)} "
                f"slowest_s={max(r.ended - r.started for r in results):.1f}"
            )
        # No request hung: each ended on a service's bound, well before the client's.
        assert kinds["client_timeout"] == 0, errors
        # Every stream opened ended with an event, at the latest once the network let it.
        unended = [r.message_id for r in results if r.message_id and not r.ended_with_event]
        assert not unended, f"streams that never got their last event: {unended}"
        # What the client saw as done is what was stored, whole, with its sources.
        for r in done:
            stored = stored_answer(client, r.answer, r.guest)
            assert stored["status"] == "complete", stored
            assert stored["content"] == r.answer.text
            assert stored["sources"] == r.answer.one("sources")["sources"]
    assert recovery is not None and recovery <= RECOVERY_BOUND_S, (
        f"no normal answer within {RECOVERY_BOUND_S} s of the fault ending"
    )
    after = [r for r in results if r.started >= outcome["recovered_at"]]
    assert after and all(r.kind == "done" for r in after), Counter(r.kind for r in after)


FAULTS: dict[str, Callable[[FaultProxy], None]] = {
    "latency300": lambda proxy: proxy.latency(300),
    "reset": lambda proxy: proxy.reset(),
    "blackhole": lambda proxy: proxy.blackhole(),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_chat_to_retrieval(hops: Hops, fault: str, capsys: pytest.CaptureFixture[str]) -> None:
    outcome = run_case(hops, hops.retrieval_proxy, FAULTS[fault])
    check(hops.stack, f"chat-retrieval-{fault}", outcome, capsys)


@pytest.mark.parametrize("fault", FAULTS)
def test_gateway_to_chat(hops: Hops, fault: str, capsys: pytest.CaptureFixture[str]) -> None:
    outcome = run_case(hops, hops.chat_proxy, FAULTS[fault])
    check(hops.stack, f"gateway-chat-{fault}", outcome, capsys)
