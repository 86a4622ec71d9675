"""Log redaction: credentials never reach a log line, and counters whose names merely contain a
secret-sounding word (`prompt_tokens`) stay readable."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from lectern_common.logging import REDACTED, configure_logging

# Logs one event with the given fields; returns the rendered line and the event parsed back.
LogOne = Callable[..., tuple[str, dict[str, Any]]]


@pytest.fixture
def json_log(capsys: pytest.CaptureFixture[str]) -> Iterator[LogOne]:
    """A logger writing JSON lines to the captured stderr, and a reader of its last line; the
    global logging set-up is put back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def log_one(**fields: object) -> tuple[str, dict[str, Any]]:
        # Configured here, in the test's call: the logger writes to the stderr of that moment,
        # and pytest swaps the captured stream between a fixture's set-up and the test.
        configure_logging(service="test", json=True)
        structlog.get_logger().info("test.event", **fields)
        line = capsys.readouterr().err.strip().splitlines()[-1]
        return line, json.loads(line)

    yield log_one
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers, root.level = handlers, level
    logging.getLogger("uvicorn.access").disabled = False


@pytest.mark.parametrize(
    "key, redacted",
    [
        ("authorization", True),
        ("Authorization", True),
        ("cookie", True),
        ("set-cookie", True),
        ("api_key", True),
        ("gemini_api_key", True),
        ("password", True),
        ("PASSWORD", True),
        ("secret", True),
        ("token", True),
        ("x-internal-token", True),
        ("X-Internal-Token", True),
        ("internal_token", True),
        ("admin_token", True),
        ("guest_token", True),
        ("session_token", True),
        ("access_token", True),
        ("better_auth_secret", True),
        ("prompt_tokens", False),
        ("output_tokens", False),
        ("first_token_ms", False),
        ("before_first_token", False),
        ("usage", False),
        ("timings", False),
        ("request_id", False),
        ("user_id", False),
        ("tokens", False),
        ("secret_count", False),
    ],
)
def test_a_key_is_redacted_exactly_when_it_names_a_credential(
    json_log: LogOne, key: str, redacted: bool
) -> None:
    _, event = json_log(**{key: "value-42"})
    assert (event[key] == REDACTED) is redacted
    if not redacted:
        assert event[key] == "value-42"


def test_a_redacted_secret_never_appears_in_the_rendered_line(json_log: LogOne) -> None:
    line, event = json_log(
        authorization="Bearer eyJhbGciOiJFZERTQSJ9.payload.signature",
        password="correct horse battery staple",
        **{"x-internal-token": "internal-0123456789abcdef0123456789"},
        prompt_tokens=812,
        usage={"prompt_tokens": 812, "output_tokens": 64},
    )
    for secret in (
        "eyJhbGciOiJFZERTQSJ9",
        "correct horse",
        "internal-0123456789abcdef0123456789",
    ):
        assert secret not in line
    assert event["event"] == "test.event"
    assert event["service"] == "test"
    assert event["prompt_tokens"] == 812
    assert event["usage"] == {"prompt_tokens": 812, "output_tokens": 64}


def test_stdlib_records_become_json_lines_of_the_service(
    json_log: LogOne, capsys: pytest.CaptureFixture[str]
) -> None:
    json_log()
    logging.getLogger("uvicorn.error").warning("started")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    event = json.loads(line)
    assert event["event"] == "started"
    assert event["service"] == "test"


def test_uvicorns_own_logging_config_does_not_keep_its_lines_out_of_ours(
    json_log: LogOne, capsys: pytest.CaptureFixture[str]
) -> None:
    """An in-process uvicorn.Config (a test's server, a bench) applies uvicorn's LOGGING_CONFIG:
    its loggers get their own plain-text handler and stop propagating. The service's logging
    set-up takes them back (CI once failed on this order of tests)."""
    import logging.config

    import uvicorn.config

    logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)
    json_log()
    logging.getLogger("uvicorn.error").warning("started again")
    event = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert event["event"] == "started again"
    assert event["service"] == "test"


def test_the_model_clients_per_call_info_lines_are_off() -> None:
    """google-genai and httpx2 log two INFO lines per model call; a burst of answers would
    spend CPU writing them. Warnings still come through."""
    configure_logging(service="test", json=True)
    for name in ("httpx", "httpx2", "google_genai.models"):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
        assert logging.getLogger(name).isEnabledFor(logging.WARNING), name
