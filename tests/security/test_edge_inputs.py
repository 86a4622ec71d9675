"""Bad input at the edge, through the real gateway: every text a client sends is checked for what
the stores accept (NUL, unpaired surrogates, control and bidirectional-override characters),
bodies are capped before they are read, request models are strict, an unknown chapter is a bad
question rather than an outage, and sign-up caps its fields and needs an Origin. Each refusal
is a 4xx error envelope with a request id, never a 5xx, and the next valid request still works.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from lectern_dev.harness.books import chapter_id_of, ingest, ingest_book
from lectern_dev.harness.chat import Answer, ask, resume
from lectern_dev.harness.polling import wait_until
from lectern_dev.harness.readers import Reader, auth_request, new_reader, sign_up
from lectern_dev.harness.services import (
    admin_headers,
    fake_gemini_client,
    gateway_client,
    routed,
)
from lectern_dev.stack import Stack

TEN_MB = 10 * 1024 * 1024
# Over every service's own cap (64-128 KiB), under the gateway's (1 MiB): the service answers.
OVER_SERVICE_CAP = 300 * 1024
QUESTION = "How do ROS 2 nodes publish sensor data?"
CHAPTER = "book--05-sensors"
# Raw JSON text (not a Python str): `\ud800` must reach the server as the six characters.
BAD_TEXTS = {
    "nul": r"what\u0000is ros",
    "lone-surrogate": r"what\ud800is ros",
    "rtl-override": r"what\u202eis ros",
    "bell": r"what\u0007is ros",
}
WRONG_TYPES = {"number": "5", "boolean": "true", "list": '["a"]', "object": '{"a": 1}'}


@pytest.fixture(scope="module")
def stack(make_stack: Callable[..., Stack]) -> Stack:
    """A stack of this module's own: its rate limits raised (every probe comes from one
    address), the fake Gemini as the model, queries embedded locally."""
    env = {
        "EMBEDDINGS_PROVIDER": "local",
        "RATE_STREAM_PER_MIN": "100000",
        "RATE_STREAM_BURST": "10000",
        "RATE_API_PER_S": "10000",
        "RATE_API_BURST": "10000",
    }
    return routed(make_stack("edge", fake_gemini=True, extra_env=env))


@pytest.fixture(scope="module")
def gateway(stack: Stack) -> Iterator[httpx.Client]:
    with gateway_client(stack) as client:
        yield client


@pytest.fixture
def fake(stack: Stack) -> Iterator[httpx.Client]:
    with fake_gemini_client(stack) as client:
        yield client


@pytest.fixture(scope="module")
def book(stack: Stack) -> dict:
    return ingest_book(stack)


@pytest.fixture(scope="module")
def reader(gateway: httpx.Client) -> Reader:
    return new_reader(gateway)


@pytest.fixture(scope="module")
def answered(gateway: httpx.Client, book: dict) -> tuple[str, dict[str, str]]:
    """An answer a guest can rate: its message id and the guest's header."""
    answer = ask(gateway, {"message": QUESTION})
    assert answer.last.event == "done", answer.events
    return answer.meta["message_id"], answer.guest


def refused(response: httpx.Response) -> dict:
    """The error of a 4xx envelope that names its request id (as its header does too)."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), response.text[:300]
    error = response.json()["error"]
    assert error["code"] and error["message"]
    assert error["request_id"] and error["request_id"] == response.headers["x-request-id"]
    return error


def refused_answer(answer: Answer) -> dict:
    assert 400 <= answer.status < 500, (answer.status, answer.body, answer.events[:3])
    assert answer.body is not None
    error = answer.body["error"]
    assert error["request_id"] and error["request_id"] == answer.headers["x-request-id"]
    return error


def raw_json(template: str, value: str) -> bytes:
    """`template` with `VALUE` replaced by raw JSON text, as bytes on the wire."""
    return template.replace("VALUE", value).encode()


# ---- one route of each family, with a template body and how to show it still works ---------
@dataclass(frozen=True)
class Probe:
    """A public route and a JSON body template (`VALUE` is where the probed text goes)."""

    name: str
    method: str
    path: str
    template: str
    signed_in: bool = False


TEXT_FIELDS = [
    Probe("chat-message", "POST", "/api/chat/stream", '{"message": VALUE}'),
    Probe(
        "chat-selected-text",
        "POST",
        "/api/chat/stream",
        '{"message": "what is this?", "selected_text": VALUE}',
    ),
    Probe(
        "chat-message-signed-in", "POST", "/api/chat/stream", '{"message": VALUE}', signed_in=True
    ),
    Probe("feedback-comment", "POST", "/api/chat/messages/{message}/feedback", "COMMENT"),
    Probe("search-query", "POST", "/api/search", '{"query": VALUE}'),
    Probe("search-query-signed-in", "POST", "/api/search", '{"query": VALUE}', signed_in=True),
    Probe("profile-goals", "PUT", "/api/profile/me", '{"goals": VALUE}', signed_in=True),
]


def send(
    gateway: httpx.Client,
    probe: Probe,
    body: bytes,
    *,
    reader: Reader,
    answered: tuple[str, dict[str, str]],
) -> httpx.Response:
    message_id, guest = answered
    headers = {"content-type": "application/json"}
    headers.update(reader.headers if probe.signed_in else {})
    path = probe.path
    if "{message}" in path:
        path = path.format(message=message_id)
        headers.update(guest)
    response = gateway.request(probe.method, path, content=body, headers=headers)
    response.read()
    return response


def template_of(probe: Probe) -> str:
    return '{"rating": "up", "comment": VALUE}' if probe.template == "COMMENT" else probe.template


def still_works(
    gateway: httpx.Client, probe: Probe, *, reader: Reader, answered: tuple[str, dict[str, str]]
) -> None:
    """The same route answers a valid request right after the refused one."""
    valid = raw_json(template_of(probe), '"what is a ROS 2 node?"')
    response = send(gateway, probe, valid, reader=reader, answered=answered)
    assert response.status_code == 200, response.text[:300]
    if probe.path == "/api/chat/stream":
        assert "event: done" in response.text


@pytest.mark.parametrize("text", BAD_TEXTS.values(), ids=BAD_TEXTS.keys())
@pytest.mark.parametrize("probe", TEXT_FIELDS, ids=[p.name for p in TEXT_FIELDS])
def test_unstorable_text_in_any_field_is_a_422_envelope(
    gateway: httpx.Client, reader: Reader, answered, probe: Probe, text: str
):
    body = raw_json(template_of(probe), f'"{text}"')
    error = refused(send(gateway, probe, body, reader=reader, answered=answered))
    assert error["code"] == "validation_error"
    still_works(gateway, probe, reader=reader, answered=answered)


@pytest.mark.parametrize("value", WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
@pytest.mark.parametrize("probe", TEXT_FIELDS, ids=[p.name for p in TEXT_FIELDS])
def test_a_wrong_type_in_any_text_field_is_a_422_envelope(
    gateway: httpx.Client, reader: Reader, answered, probe: Probe, value: str
):
    body = raw_json(template_of(probe), value)
    assert refused(send(gateway, probe, body, reader=reader, answered=answered))["code"] == (
        "validation_error"
    )
    still_works(gateway, probe, reader=reader, answered=answered)


@pytest.mark.parametrize("probe", TEXT_FIELDS, ids=[p.name for p in TEXT_FIELDS])
def test_deeply_nested_json_is_a_4xx_envelope(
    gateway: httpx.Client, reader: Reader, answered, probe: Probe
):
    nested = "[" * 20_000 + "]" * 20_000
    body = raw_json(template_of(probe), nested)
    assert refused(send(gateway, probe, body, reader=reader, answered=answered))["code"] in {
        "bad_request",
        "validation_error",
    }
    still_works(gateway, probe, reader=reader, answered=answered)


def test_a_nul_in_the_question_is_refused_before_anything_is_stored(
    gateway: httpx.Client, book: dict
):
    """Item 2: PostgreSQL refuses 0x00 in text; the question used to reach it (a 500 whose
    envelope had no request id)."""
    answer = ask(gateway, {"message": "what\u0000is ros"})
    assert answer.status == 422
    error = refused_answer(answer)
    assert error["code"] == "validation_error"
    assert error["details"][0]["field"] == "message"
    assert "U+0000" in error["details"][0]["message"]
    assert ask(gateway, {"message": "what is ros"}).last.event == "done"


def test_a_nul_in_profile_goals_and_feedback_is_refused(
    gateway: httpx.Client, reader: Reader, answered
):
    goals = gateway.put("/api/profile/me", json={"goals": "a\u0000b"}, headers=reader.headers)
    assert goals.status_code == 422 and refused(goals)["details"][0]["field"] == "goals"
    message_id, guest = answered
    feedback = gateway.post(
        f"/api/chat/messages/{message_id}/feedback",
        json={"rating": "down", "comment": "a\u0000b"},
        headers=guest,
    )
    assert feedback.status_code == 422 and refused(feedback)["details"][0]["field"] == "comment"


# ---- item 6: an unknown chapter is a bad question, not an outage ---------------------------
def test_a_question_about_an_unknown_chapter_is_a_404_before_the_stream(
    gateway: httpx.Client, book: dict
):
    answer = ask(gateway, {"message": QUESTION, "chapter_id": "book--no-such-chapter"})
    assert answer.status == 404, answer.events
    assert refused_answer(answer)["code"] == "chapter_not_found"
    search = gateway.post("/api/search", json={"query": QUESTION, "chapter_id": "book--nope"})
    assert search.status_code == 404
    # A known chapter still answers, limited to it.
    answer = ask(gateway, {"message": QUESTION, "chapter_id": CHAPTER})
    assert answer.last.event == "done"
    assert {s["chapter_id"] for s in answer.one("sources")["sources"]} == {CHAPTER}


def test_a_chapter_removed_after_the_check_ends_the_answer_with_a_final_error(
    stack: Stack, gateway: httpx.Client, book: dict
):
    source = "edge-gone"
    ingest(stack, source, {"kept.md": "# Kept\n\nA page about lidar.\n"})
    ingest(stack, source, {"gone.md": "# Gone\n\nA page about cameras and lidar.\n"})
    gone = chapter_id_of(source, "gone.md")
    # A new chapter is known to chat within about a second (its list is fetched again on a miss).
    first = wait_until(
        lambda: (a := ask(gateway, {"message": "lidar?", "chapter_id": gone})).status == 200 and a,
        10,
        interval_s=0.2,
        message="chat never learned of the new chapter",
    )
    assert first.last.event == "done"
    # The whole source is replaced: the chat service's list of chapters still has `gone`.
    ingest(stack, source, {"kept.md": "# Kept\n\nA page about lidar.\n"})
    answer = ask(gateway, {"message": "lidar?", "chapter_id": gone})
    if answer.status == 404:  # the chat service's list was fetched again meanwhile
        assert refused_answer(answer)["code"] == "chapter_not_found"
        return
    assert answer.last.event == "error"
    assert answer.last.data["code"] == "chapter_not_found"
    assert answer.last.data["retryable"] is False


# ---- item 7: bodies are capped before they are read ----------------------------------------
@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: str
    signed_in: bool = False
    # Whether the gateway buffers (and so caps) the route's bodies: not where it streams.
    buffered: bool = True


ROUTES = [
    Route("chat-stream", "POST", "/api/chat/stream", buffered=False),
    Route("chat-resume", "GET", "/api/chat/messages/{message}/events", buffered=False),
    Route("admin", "POST", "/api/admin/search", buffered=False),
    Route("chat-feedback", "POST", "/api/chat/messages/{message}/feedback"),
    Route("chat-claim", "POST", "/api/chat/conversations/claim", signed_in=True),
    Route("chat-conversations", "GET", "/api/chat/conversations"),
    Route("search", "POST", "/api/search"),
    Route("chapters", "GET", "/api/chapters"),
    Route("profile", "PUT", "/api/profile/me", signed_in=True),
    Route(
        "summary-translation",
        "POST",
        f"/api/summary/chapters/{CHAPTER}/translation",
        buffered=False,
    ),
    Route(
        "summary-personalized",
        "POST",
        f"/api/summary/chapters/{CHAPTER}/personalized",
        signed_in=True,
        buffered=False,
    ),
    Route("summary", "GET", f"/api/summary/chapters/{CHAPTER}", buffered=False),
    Route("auth-sign-up", "POST", "/api/auth/sign-up/email"),
]


def route_headers(
    gateway: httpx.Client, route: Route, reader: Reader, answered: tuple[str, dict[str, str]]
) -> tuple[str, dict[str, str]]:
    message_id, guest = answered
    headers = {"content-type": "application/json", "origin": str(gateway.base_url)}
    headers.update(reader.headers if route.signed_in else {})
    if "{message}" in route.path:
        headers.update(guest)
    return route.path.format(message=message_id), headers


def assert_too_large(response: httpx.Response, route: Route) -> None:
    assert response.status_code == 413, (response.status_code, response.text[:200])
    # Refused by the gateway itself (a buffered route, over its 1 MiB) or by the service: the
    # envelope either way.
    error = response.json()["error"]
    assert error["code"] == "payload_too_large"
    assert error["request_id"] == response.headers["x-request-id"]


def padded(size: int) -> bytes:
    return b'{"message": "' + b"x" * size + b'"}'


def chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("size", [OVER_SERVICE_CAP, TEN_MB], ids=["300KB", "10MB"])
@pytest.mark.parametrize("route", ROUTES, ids=[r.name for r in ROUTES])
def test_an_oversized_body_is_a_413_on_every_route(
    gateway: httpx.Client, reader: Reader, answered, book: dict, route: Route, size: int
):
    path, headers = route_headers(gateway, route, reader, answered)
    response = gateway.request(route.method, path, content=padded(size), headers=headers)
    assert_too_large(response, route)
    if not route.buffered or size == OVER_SERVICE_CAP:
        # The service's own cap answered, with the envelope (the gateway's is larger).
        assert response.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("route", ROUTES, ids=[r.name for r in ROUTES])
def test_an_oversized_chunked_body_is_a_413_on_every_route(
    gateway: httpx.Client, reader: Reader, answered, book: dict, route: Route
):
    """No Content-Length: the bytes are counted as they arrive, also on a route that never
    reads its body."""
    path, headers = route_headers(gateway, route, reader, answered)
    response = gateway.request(
        route.method, path, content=chunks(padded(OVER_SERVICE_CAP)), headers=headers
    )
    assert "content-length" not in response.request.headers
    assert_too_large(response, route)


def test_a_ten_megabyte_profile_or_search_is_refused_before_it_is_parsed(
    gateway: httpx.Client, reader: Reader, book: dict
):
    """Item 7: both were read whole and parsed, then answered 422."""
    goals = {"goals": "x" * TEN_MB}
    assert gateway.put("/api/profile/me", json=goals, headers=reader.headers).status_code == 413
    assert gateway.post("/api/search", json={"query": "x" * TEN_MB}).status_code == 413
    over = gateway.put(
        "/api/profile/me", json={"goals": "x" * OVER_SERVICE_CAP}, headers=reader.headers
    )
    assert over.status_code == 413 and refused(over)["code"] == "payload_too_large"
    assert gateway.post("/api/search", json={"query": "ros 2 nodes"}).status_code == 200


def test_the_admin_upload_keeps_its_larger_cap(stack: Stack, book: dict):
    """A source of a few hundred KB is still one upload (the JSON routes' cap is 64 KB)."""
    text = "# Big\n\n" + "A paragraph about lidar and cameras.\n\n" * 12_000
    assert len(text) > OVER_SERVICE_CAP
    summary = ingest(stack, "edge-big", {"big.md": text})
    assert summary["files"] == 1


# ---- the stream routes are not buffered by the gateway --------------------------------------
SLOW = {"default_reply": "one two three four five six", "words_per_chunk": 1}


def spread(arrived: list[float]) -> float:
    return arrived[-1] - arrived[0]


def test_answer_streams_still_arrive_piece_by_piece(
    gateway: httpx.Client, fake: httpx.Client, book: dict
):
    fake.post("/_fake/config", json={**SLOW, "token_interval_ms": 250})
    answer = ask(gateway, {"message": QUESTION})
    tokens = [t for e, t in zip(answer.events, answer.arrived, strict=True) if e.event == "token"]
    assert len(tokens) >= 5
    # Buffered, every token would arrive at once at the end.
    assert spread(tokens) >= 0.5

    partial = ask(gateway, {"message": QUESTION}, stop_after_tokens=1)
    rest = resume(
        gateway, partial.meta["message_id"], last_event_id=partial.last.id, headers=partial.guest
    )
    later = [t for e, t in zip(rest.events, rest.arrived, strict=True) if e.event == "token"]
    assert rest.last.event == "done" and len(later) >= 3
    assert spread(later) >= 0.4


def test_a_translation_still_streams_piece_by_piece(
    stack: Stack, gateway: httpx.Client, fake: httpx.Client, book: dict
):
    source = f"edge-stream-{time.monotonic_ns()}"
    ingest(stack, source, {"page.md": "# Page\n\nA short page about lidar.\n"})
    fake.post("/_fake/config", json={**SLOW, "token_interval_ms": 250})
    arrived = []
    with gateway.stream(
        "POST",
        f"/api/summary/chapters/{chapter_id_of(source, 'page.md')}/translation",
        json={"language": "de"},
        headers={"accept": "text/event-stream"},
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data:") and '"text"' in line:
                arrived.append(time.monotonic())
    assert len(arrived) >= 5 and spread(arrived) >= 0.5


# ---- item 8 (inputs): strict public models, sign-up fields and Origin ---------------------
@pytest.mark.parametrize(
    "body, field",
    [
        ({"query": "ros", "top_k": "5"}, "top_k"),
        ({"query": "ros", "top_k": True}, "top_k"),
        ({"query": "ros", "mode": "lexical"}, "mode"),
        ({"query": "ros", "unknown": 1}, "unknown"),
        ({"query": "ros", "chapter_id": "..%2F..%2Fetc%2Fpasswd"}, "chapter_id"),
        ({"query": "ros", "chapter_id": "book\u0000"}, "chapter_id"),
    ],
)
def test_public_search_is_strict(gateway: httpx.Client, book: dict, body: dict, field: str):
    error = refused(gateway.post("/api/search", json=body))
    assert field in {d["field"] for d in error["details"]}


@pytest.mark.parametrize("top_k", ["5", True, 5.5])
def test_a_question_takes_top_k_only_as_a_number(gateway: httpx.Client, book: dict, top_k):
    answer = ask(gateway, {"message": QUESTION, "top_k": top_k})
    assert answer.status == 422
    assert refused_answer(answer)["details"][0]["field"] == "top_k"


TRAVERSALS = ["..%2F..%2Fetc%2Fpasswd", "%2e%2e", "book%00", "..", "%00", "book--05-sensors%2F.."]


@pytest.mark.parametrize("chapter", TRAVERSALS)
@pytest.mark.parametrize(
    "method, template",
    [
        ("GET", "/api/summary/chapters/{}"),
        ("POST", "/api/summary/chapters/{}/translation"),
        ("POST", "/api/summary/chapters/{}/personalized"),
    ],
)
def test_path_tricks_in_chapter_ids_are_refused(
    gateway: httpx.Client, reader: Reader, book: dict, method: str, template: str, chapter: str
):
    response = gateway.request(
        method,
        template.format(chapter),
        json={"language": "de"} if template.endswith("translation") else None,
        headers=reader.headers,
    )
    assert 400 <= response.status_code < 500, response.text[:200]
    if response.headers.get("content-type", "").startswith("application/json"):
        refused(response)
    summary = gateway.get(f"/api/summary/chapters/{CHAPTER}")
    assert summary.status_code == 200


@pytest.mark.parametrize("chapter", ["../etc/passwd", "book\u0000", "..%2F..%2Fetc%2Fpasswd"])
def test_path_tricks_in_a_question_chapter_are_refused(
    gateway: httpx.Client, book: dict, chapter: str
):
    answer = ask(gateway, {"message": QUESTION, "chapter_id": chapter})
    assert refused_answer(answer)["code"] == "validation_error"


def auth_refused(response: httpx.Response) -> dict:
    """Better Auth's own errors are `{code, message}`; ours add the request id."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    body = response.json()
    assert response.headers["x-request-id"]
    return body.get("error", body)


def test_sign_up_caps_the_name(gateway: httpx.Client):
    response = sign_up(gateway, name="n" * 60_000)
    assert response.status_code == 400
    assert auth_refused(response)["code"] == "INVALID_USER_FIELD"
    assert sign_up(gateway, name="n" * 100).status_code == 200


@pytest.mark.parametrize("text", BAD_TEXTS.values(), ids=BAD_TEXTS.keys())
@pytest.mark.parametrize("field", ["name", "email"])
def test_sign_up_fields_must_be_storable_text(gateway: httpx.Client, field: str, text: str):
    values = {"name": '"Reader"', "email": f'"edge-{time.monotonic_ns()}@example.com"'}
    values[field] = f'"{text}"'
    body = (
        f'{{"email": {values["email"]}, "password": "a-long-password", "name": {values["name"]}}}'
    )
    response = auth_request(
        gateway,
        "POST",
        "/api/auth/sign-up/email",
        content=body.encode(),
        headers={"content-type": "application/json"},
    )
    assert auth_refused(response)
    assert sign_up(gateway).status_code == 200


def test_update_user_caps_the_name(gateway: httpx.Client):
    reader = new_reader(gateway)
    response = auth_request(
        gateway,
        "POST",
        "/api/auth/update-user",
        json={"name": "n" * 60_000},
        headers=reader.headers,
    )
    assert auth_refused(response)["code"] == "INVALID_USER_FIELD"


def test_a_state_changing_auth_request_without_origin_is_403(gateway: httpx.Client):
    body = {"email": f"edge-{time.monotonic_ns()}@example.com", "password": "a-long-password"}
    response = gateway.post("/api/auth/sign-up/email", json={**body, "name": "No Origin"})
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "origin_required"
    assert error["request_id"] == response.headers["x-request-id"]
    # Reading needs no Origin; the same sign-up from the page's origin works.
    assert gateway.get("/api/auth/ok").status_code == 200
    assert sign_up(gateway, email=body["email"], password=body["password"]).status_code == 200


def test_an_auth_body_over_its_cap_is_413_even_chunked(gateway: httpx.Client):
    body = json.dumps({"email": "a@example.com", "password": "p" * 200_000, "name": "x"})
    response = gateway.post(
        "/api/auth/sign-up/email",
        content=chunks(body.encode()),
        headers={"content-type": "application/json", "origin": str(gateway.base_url)},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


# ---- the cases a generator will not think of (tests/security/test_fuzz_routes.py fuzzes the
# rest): raw bytes and lengths no JSON schema describes, on the routes not covered above ------
# Go's net/http answers a request whose line and headers pass the gateway's maxHeaderBytes
# before Traefik routes it: no middleware can put that answer in the envelope.
TRAEFIK_431 = "431 Request Header Fields Too Large"


def raw_request(stack: Stack, head: bytes, body: bytes = b"") -> tuple[int, dict, bytes]:
    """Bytes on the wire as given (httpx refuses a 64 KB URL and invalid UTF-8 in a path):
    the status, headers and body of the answer."""
    host, port = stack.gateway_url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(head + b"\r\nHost: lectern\r\nConnection: close\r\n\r\n" + body)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    top, _, rest = data.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    headers = dict(
        (k.strip().lower(), v.strip()) for k, v in (ln.split(":", 1) for ln in lines[1:])
    )
    return int(lines[0].split()[1]), headers, rest


def assert_envelope(status: int, headers: dict, body: bytes) -> dict:
    assert 400 <= status < 500, (status, body[:200])
    assert headers["content-type"].startswith("application/json"), body[:200]
    error = json.loads(body)["error"]
    assert error["code"] and error["request_id"] == headers["x-request-id"]
    return error


RAW_PATHS = {
    "encoded traversal in /api/chapters": b"/api/chapters/..%2F..%2Fetc%2Fpasswd",
    "dot segments in /api/chapters": b"/api/chapters/../../etc/passwd",
    "dot segments in a summary id": b"/api/summary/chapters/../../x",
    "encoded dot segments in a summary id": b"/api/summary/chapters/..%2F..%2Fx",
    "invalid UTF-8 bytes in a summary id": b"/api/summary/chapters/\xff\xfe",
    "invalid UTF-8 escapes in a message id": b"/api/chat/messages/%FF%FE/events",
    "NUL in a conversation id": b"/api/chat/conversations/%00",
    "invalid UTF-8 in a query": b"/api/chat/conversations?limit=%FF",
    "10,000-character chapter id": b"/api/summary/chapters/" + b"a" * 10_000,
    "10,000-character conversation id": b"/api/chat/conversations/" + b"a" * 10_000,
}


@pytest.mark.parametrize("path", RAW_PATHS.values(), ids=RAW_PATHS.keys())
def test_raw_paths_are_a_4xx_envelope(stack: Stack, reader: Reader, book: dict, path: bytes):
    for auth in (b"", f"\r\nAuthorization: Bearer {reader.session_token}".encode()):
        assert_envelope(*raw_request(stack, b"GET " + path + b" HTTP/1.1" + auth))


LONG_URLS = [
    b"/api/summary/chapters/",
    b"/api/chat/conversations/",
    b"/api/profile/me?x=",
    b"/api/chapters?x=",
    b"/api/auth/get-session?x=",
]


@pytest.mark.parametrize("size", [20_000, 100_000, 2_000_000], ids=["20KB", "100KB", "2MB"])
@pytest.mark.parametrize("prefix", LONG_URLS, ids=[p.decode() for p in LONG_URLS])
def test_an_over_long_url_is_refused_by_the_gateway_or_the_route(
    stack: Stack, book: dict, prefix: bytes, size: int
):
    """Past the gateway's header cap, its own 431; under it, the route's answer. Before the
    cap, 100 KB got uvicorn's plain-text 400 and, on /api/auth, Traefik's 500."""
    status, headers, body = raw_request(stack, b"GET " + prefix + b"a" * size + b" HTTP/1.1")
    if size > 64 * 1024:
        assert (status, body.decode().strip()) == (431, TRAEFIK_431)
    elif prefix.startswith(b"/api/auth"):
        assert status == 200 and json.loads(body) is None  # no session: not signed in
    elif prefix.startswith(b"/api/chapters"):
        assert status == 200
    else:
        assert_envelope(status, headers, body)


def test_a_large_header_reaches_better_auth(stack: Stack):
    """Under the gateway's cap, Better Auth reads it (node's own 16 KB answered an empty 431)."""
    junk = b"\r\nX-Junk: " + b"j" * 20_000
    status, _, body = raw_request(stack, b"GET /api/auth/get-session HTTP/1.1" + junk)
    assert status == 200 and json.loads(body) is None


@dataclass(frozen=True)
class JsonRoute:
    name: str
    method: str
    path: str
    who: str = "guest"  # guest, reader, admin, or the guest who asked (owner)


JSON_ROUTES = [
    JsonRoute("chat-stream", "POST", "/api/chat/stream"),
    JsonRoute("chat-feedback", "POST", "/api/chat/messages/{message}/feedback", "owner"),
    JsonRoute("search", "POST", "/api/search"),
    JsonRoute("profile", "PUT", "/api/profile/me", "reader"),
    JsonRoute("translation", "POST", f"/api/summary/chapters/{CHAPTER}/translation"),
    JsonRoute("admin-search", "POST", "/api/admin/search", "admin"),
    JsonRoute("admin-ingest-path", "POST", "/api/admin/ingest-path", "admin"),
]
WHOLE_BODIES = {
    "10,000 nested lists": b"[" * 10_000 + b"]" * 10_000,
    "10,000 nested objects": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    "invalid UTF-8": b'{"message": "\xff\xfe", "query": "\xc3", "goals": "\xed\xa0\x80"}',
    "NUL byte outside a string": b'{"message": "x"}\x00',
    "truncated": b'{"message": "x',
}


def json_route_headers(
    stack: Stack, route: JsonRoute, reader: Reader, answered: tuple[str, dict[str, str]]
) -> tuple[str, dict[str, str]]:
    message_id, guest = answered
    headers = {"content-type": "application/json"}
    headers.update(
        {
            "guest": {},
            "owner": guest,
            "reader": reader.headers,
            "admin": admin_headers(stack),
        }[route.who]
    )
    return route.path.format(message=message_id), headers


@pytest.mark.parametrize("body", WHOLE_BODIES.values(), ids=WHOLE_BODIES.keys())
@pytest.mark.parametrize("route", JSON_ROUTES, ids=[r.name for r in JSON_ROUTES])
def test_a_broken_whole_body_is_a_4xx_envelope(
    stack: Stack,
    gateway: httpx.Client,
    reader: Reader,
    answered,
    book: dict,
    route: JsonRoute,
    body: bytes,
):
    path, headers = json_route_headers(stack, route, reader, answered)
    for who in ({}, reader.headers):  # signed in or not, where the route takes a guest
        if route.who != "guest" and who:
            continue
        error = refused(gateway.request(route.method, path, content=body, headers=headers | who))
        # Deep nesting may pass the route's own body cap first (translation's is small).
        assert error["code"] in {
            "invalid_json",
            "bad_request",
            "validation_error",
            "payload_too_large",
        }


NEW_TEXT_FIELDS = [
    (
        "translation-language",
        "POST",
        f"/api/summary/chapters/{CHAPTER}/translation",
        '{"language": VALUE}',
        "guest",
    ),
    ("admin-search-query", "POST", "/api/admin/search", '{"query": VALUE}', "admin"),
    (
        "ingest-path-source",
        "POST",
        "/api/admin/ingest-path",
        '{"source": VALUE, "path": "/x"}',
        "admin",
    ),
    (
        "ingest-path-path",
        "POST",
        "/api/admin/ingest-path",
        '{"source": "x", "path": VALUE}',
        "admin",
    ),
    (
        "ingest-path-url-prefix",
        "POST",
        "/api/admin/ingest-path",
        '{"source": "x", "path": "/x", "url_prefix": VALUE}',
        "admin",
    ),
]


@pytest.mark.parametrize("text", BAD_TEXTS.values(), ids=BAD_TEXTS.keys())
@pytest.mark.parametrize("field", NEW_TEXT_FIELDS, ids=[f[0] for f in NEW_TEXT_FIELDS])
def test_unstorable_text_in_the_other_fields_is_a_4xx_envelope(
    stack: Stack, gateway: httpx.Client, book: dict, field: tuple, text: str
):
    _, method, path, template, who = field
    headers = {"content-type": "application/json"}
    headers.update(admin_headers(stack) if who == "admin" else {})
    response = gateway.request(
        method, path, content=raw_json(template, f'"{text}"'), headers=headers
    )
    # Ingest-path with no allowed root refuses with 403 once the body is valid: never a 5xx.
    assert refused(response)["code"] in {"validation_error", "path_ingest_disabled"}


# 10 MB is under the upload's own cap (64 MiB of source files): not a multipart body, so 400.
ADMIN_ROUTES = [
    ("POST", "/api/admin/ingest", "multipart/form-data; boundary=x", (400, "bad_request")),
    ("POST", "/api/admin/ingest-path", "application/json", (413, "payload_too_large")),
    ("GET", "/api/admin/insights", "application/json", (413, "payload_too_large")),
    ("DELETE", "/api/profile/me", "application/json", (413, "payload_too_large")),
]


@pytest.mark.parametrize(
    "method, path, kind, expected", ADMIN_ROUTES, ids=[r[1] for r in ADMIN_ROUTES]
)
def test_a_10mb_body_is_refused_quickly_on_the_other_routes(
    stack: Stack,
    gateway: httpx.Client,
    reader: Reader,
    method: str,
    path: str,
    kind: str,
    expected: tuple[int, str],
):
    headers = {"content-type": kind, **admin_headers(stack)}
    if path == "/api/profile/me":
        headers.update(reader.headers)
    started = time.monotonic()
    response = gateway.request(method, path, content=chunks(padded(TEN_MB)), headers=headers)
    elapsed = time.monotonic() - started
    assert (response.status_code, refused(response)["code"]) == expected, response.text[:200]
    assert elapsed < 5, elapsed
