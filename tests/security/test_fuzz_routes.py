"""Every public route fuzzed from its own OpenAPI description, through the real gateway.

Schemathesis turns each service's /openapi.json into Hypothesis strategies: valid requests
(positive) and requests that break the schema (negative), sent as a guest, as a fresh signed-in
reader and, on /api/admin, with the admin credential; a second pass on the routes that take an
id fills it with one that exists (a real chapter, message or conversation), so the bodies reach
the code behind the 404. Every answer must be below 500, carry no traceback and no SQL, and
every 4xx is the error envelope. Failures are collected, not raised inside Hypothesis, so it
never shrinks nor replays and the counts printed at the end are the requests really sent.

Run alone with `make test-fuzz` (docs/SECURITY.md has the figures of the last run).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.generation.drivers import CoverageGenerator
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.generation.overrides import Override

from lectern_dev.harness.books import chapter_id_of, ingest
from lectern_dev.harness.chat import ask
from lectern_dev.harness.readers import new_reader
from lectern_dev.harness.services import admin_headers, gateway_client, routed
from lectern_dev.stack import Stack

pytestmark = pytest.mark.fuzz

SERVICES = ("chat", "retrieval", "profile", "summary")
# Cases per operation, identity, mode and pass (Hypothesis stops earlier where it runs out of
# distinct ones): ~650 requests, 0.5-2 minutes on a loaded 2-core machine.
EXAMPLES = 6
# Text no answer may carry: a Python traceback, or SQL and its driver's words.
LEAKS = (
    "Traceback (most recent call last)",
    'File "/',
    "SELECT ",
    "INSERT INTO",
    "asyncpg",
    "psycopg",
    "syntax error at or near",
    "lectern_",
)
# Answers the gateway writes itself and that cannot be the envelope: Traefik's rateLimit
# middleware has no body setting (and the errors middleware would drop its Retry-After). The
# other one, Go's 431 for headers past maxHeaderBytes, comes before routing; no generated case
# is that large (test_edge_inputs.py sends them).
TRAEFIK_OWN = {(429, "Too Many Requests")}
QUESTION = "How do ROS 2 nodes publish sensor data?"


@dataclass
class Tally:
    """What one route got and answered, counted as it is sent."""

    cases: int = 0
    server_errors: int = 0
    seconds: float = 0.0
    statuses: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


TALLY: dict[str, Tally] = {}


@pytest.fixture(scope="module")
def ingest_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An allowed folder for /api/admin/ingest-path, so the fuzzer gets past its 403."""
    root = tmp_path_factory.mktemp("fuzz-root")
    (root / "docs").mkdir()
    (root / "docs" / "page.md").write_text("# Page\n\nA page about lidar.\n")
    return root


@pytest.fixture(scope="module")
def stack(make_stack: Callable[..., Stack], ingest_root: Path) -> Stack:
    """A stack of this module's own: every case comes from one address, so the rate limits
    are raised (a 429 would hide what the route does)."""
    env = {
        "EMBEDDINGS_PROVIDER": "local",
        "RATE_STREAM_PER_MIN": "100000",
        "RATE_STREAM_BURST": "10000",
        "RATE_API_PER_S": "10000",
        "RATE_API_BURST": "10000",
        "RETRIEVAL_INGEST_ROOTS": str(ingest_root),
    }
    return routed(make_stack("fuzz", fake_gemini=True, extra_env=env))


@pytest.fixture(scope="module")
def gateway(stack: Stack) -> Iterator[httpx.Client]:
    with gateway_client(stack) as client:
        yield client


@pytest.fixture(scope="module")
def chapter(stack: Stack) -> str:
    ingest(stack, "fuzz", {"sensors.md": "# Sensors\n\nNodes publish lidar scans on topics.\n"})
    return chapter_id_of("fuzz", "sensors.md")


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@pytest.fixture(scope="module", autouse=True)
def report(request: pytest.FixtureRequest) -> Iterator[None]:
    """One line per route after the run (shown without -s too), then the totals."""
    yield
    if not TALLY:
        return
    plugins = request.config.pluginmanager
    write = plugins.get_plugin("terminalreporter").write_line
    with plugins.get_plugin("capturemanager").global_and_fixture_disabled():
        write("")
        write(f"{'route':<52} {'cases':>6} {'5xx':>4} {'s':>5}  statuses")
        for label, t in sorted(TALLY.items()):
            codes = " ".join(f"{code}:{n}" for code, n in sorted(t.statuses.items()))
            write(f"{label:<52} {t.cases:>6} {t.server_errors:>4} {t.seconds:>5.1f}  {codes}")
        total = sum(t.cases for t in TALLY.values())
        errors = sum(t.server_errors for t in TALLY.values())
        seconds = sum(t.seconds for t in TALLY.values())
        routes = f"total ({len(TALLY)} routes)"
        write(f"{routes:<52} {total:>6} {errors:>4} {seconds:>5.1f}")


def public_operations(stack: Stack, service: str) -> list[schemathesis.APIOperation]:
    """The operations of the service's own description under /api (its /health, /ready and
    /accepting are the service's, reached through the gateway as /api/<service>/health; its
    /internal routes are not public). DELETEs last: they remove what the others use."""
    raw = httpx.get(f"{stack.config.url(service)}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(raw)
    operations = [result.ok() for result in schema.get_all_operations()]
    public = [op for op in operations if op.path.startswith("/api/")]
    assert public and all(not op.path.startswith("/internal") for op in public)
    return sorted(public, key=lambda op: op.method.upper() == "DELETE")


def problems_of(response: requests.Response) -> list[str]:
    """Why this answer breaks the rules (nothing when it keeps them)."""
    out = []
    status, text = response.status_code, response.text
    if status >= 500:
        out.append(f"{status}")
    out += [f"leaks {leak!r}" for leak in LEAKS if leak in text]
    if status == 200 and '"code":"internal_error"' in text.replace(" ", ""):
        out.append("a stream ended with internal_error")
    if status >= 400 and (status, text.strip()) not in TRAEFIK_OWN:
        try:
            error = response.json()["error"]
            assert error["code"] and error["message"] and error.get("request_id")
        except (ValueError, KeyError, TypeError, AssertionError):
            out.append(f"{status} is not the envelope: {text[:120]!r}")
    return out


@dataclass(frozen=True)
class Sender:
    """Sends a case through the gateway as one identity and tallies what came back."""

    base_url: str
    session: requests.Session
    headers: dict[str, str]
    tally: Tally
    # Puts a generated path below a folder that exists (a generator cannot know one).
    root: Path | None = None

    def __call__(self, case: schemathesis.Case) -> None:
        tally = self.tally
        tally.cases += 1
        if self.root and isinstance(case.body, dict) and isinstance(case.body.get("path"), str):
            # Cut to the longest path the schema allows, so a case at the bound stays there.
            case.body = {**case.body, "path": f"{self.root}/{case.body['path']}"[:1000]}
        try:
            response = case.call(
                base_url=self.base_url, session=self.session, headers=self.headers, timeout=60
            )
        except requests.RequestException as exc:
            tally.problems.append(f"{case.method} {case.formatted_path}: {exc!r}")
            return
        tally.statuses[response.status_code] += 1
        if response.status_code >= 500:
            tally.server_errors += 1
        for problem in problems_of(response):
            body = case.body if not isinstance(case.body, bytes) else case.body[:200]
            tally.problems.append(
                f"{case.method} {case.formatted_path} query={case.query} "
                f"body={json.dumps(body, default=repr)[:300]}: {problem}"
            )


def fuzz(
    operation: schemathesis.APIOperation,
    send: Sender,
    *,
    path_parameters: dict[str, str] | None = None,
    coverage: bool = False,
) -> None:
    """Send EXAMPLES positive and EXAMPLES negative cases of `operation`, and with `coverage`
    Schemathesis's boundary cases too (each bound of each field, each wrong type: the 1000-byte
    path that ingest-path answered with a 500 is one)."""
    started = time.monotonic()
    fixed = set(path_parameters or ())
    free = [p for p in operation.iter_parameters() if p.name not in fixed]
    modes = [GenerationMode.POSITIVE]
    if operation.body or free:
        modes.append(GenerationMode.NEGATIVE)  # nothing to break in a route without inputs
    for mode in modes:
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

        @SETTINGS
        @given(case=strategy)
        def generated(case: schemathesis.Case) -> None:
            send(case)

        generated()
    if coverage:
        # Schemathesis's own coverage phase (what its pytest and CLI runs do first).
        generator = CoverageGenerator(
            operation=operation,
            generation_modes=modes,
            generation_config=operation.schema.config.generation_for(
                operation=operation, phase="coverage"
            ),
            auth_storage=None,
            override=Override(),
            feedback=FeedbackSources(),
        )
        for case in generator:
            send(case)
    send.tally.seconds += time.monotonic() - started


SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def identities(stack: Stack, gateway: httpx.Client) -> dict[str, tuple[dict, dict]]:
    """Who sends: headers, and the ids that exist for them (an answer each, the guest's with
    its token). DELETEs run last in each service, so later services still find them."""
    reader = new_reader(gateway)
    guest_answer = ask(gateway, {"message": QUESTION})
    reader_answer = ask(gateway, {"message": QUESTION}, headers=reader.headers)
    assert guest_answer.last.event == "done" and reader_answer.last.event == "done"
    return {
        "anonymous": ({}, {**guest_answer.meta, "guest": guest_answer.guest}),
        "reader": (reader.headers, reader_answer.meta),
        "admin": (admin_headers(stack), {}),
    }


@pytest.mark.parametrize("service", SERVICES)
def test_generated_requests_never_break_a_route(
    stack: Stack,
    session: requests.Session,
    identities: dict[str, tuple[dict, dict]],
    chapter: str,
    ingest_root: Path,
    service: str,
):
    labels = []
    for operation in public_operations(stack, service):
        admin = operation.path.startswith("/api/admin")
        label = f"{operation.method.upper()} {operation.path}"
        labels.append(label)
        tally = TALLY.setdefault(label, Tally())
        for who, (headers, meta) in identities.items():
            if who == "admin" and not admin:
                continue
            # Boundary cases once, as the identity the route serves (a guest gets its 401s
            # from the fuzzing alone).
            deepest = who == "admin" or (who == "reader" and not admin)
            fuzz(operation, Sender(stack.gateway_url, session, headers, tally), coverage=deepest)
            known = {
                "chapter_id": chapter,
                "message_id": meta.get("message_id"),
                "conversation_id": meta.get("conversation_id"),
            }
            names = {p.name for p in operation.path_parameters}
            if names and all(known.get(n) for n in names):
                # The guest's own ids work only with its token (not a sign-in: still anonymous).
                own = {**headers, **meta.get("guest", {})}
                ids = {n: known[n] for n in names}
                fuzz(operation, Sender(stack.gateway_url, session, own, tally), path_parameters=ids)
        if operation.path == "/api/admin/ingest-path":
            # Inside the allowed root, where the folder is looked up (outside it is a 403).
            admin_only = identities["admin"][0]
            rooted = Sender(stack.gateway_url, session, admin_only, tally, root=ingest_root)
            fuzz(operation, rooted, coverage=True)
    cases = sum(TALLY[label].cases for label in labels)
    throttled = sum(TALLY[label].statuses[429] for label in labels)
    assert throttled * 10 < cases, f"{throttled} of {cases} answers were 429"
    found = [p for label in labels for p in TALLY[label].problems]
    assert not found, f"{len(found)} problems:\n" + "\n".join(found[:40])


INTERNAL = [
    ("GET", "/internal/auth/verify"),
    ("POST", "/internal/search"),
    ("GET", "/internal/chapters/book--05-sensors"),
    ("GET", "/internal/profiles/someone"),
    ("GET", "/accepting"),
    ("GET", "/openapi.json"),
    ("GET", "/metrics"),
]


@pytest.mark.parametrize("method, path", INTERNAL)
def test_the_gateway_routes_no_internal_path(
    stack: Stack, gateway: httpx.Client, method: str, path: str
):
    """Not public, so not fuzzed: the gateway's catch-all answers them (its 404 envelope),
    whatever credential comes with them."""
    for headers in ({}, admin_headers(stack)):
        response = gateway.request(method, path, headers=headers)
        assert response.status_code == 404, (path, response.status_code, response.text[:200])
        assert response.json()["error"]["code"] == "not_found"
