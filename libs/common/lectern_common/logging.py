"""structlog set-up: JSON lines in production, readable lines in a terminal, secrets redacted."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Keys whose values are credentials, compared lower-cased with "-" read as "_" (so a header name
# and a keyword argument match alike). Exact names, not substrings: `prompt_tokens`,
# `first_token_ms` or `token_hash` are numbers and digests a reader of the logs needs.
SECRET_KEYS = frozenset(
    {
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "api_key",
        "x_api_key",
        "x_goog_api_key",
        "gemini_api_key",
        "qdrant_api_key",
        "token",
        "x_internal_token",
        "internal_token",
        "admin_token",
        "guest_token",
        "session_token",
        "access_token",
        "refresh_token",
        "id_token",
        "password",
        "secret",
        "better_auth_secret",
        "client_secret",
    }
)
REDACTED = "[redacted]"


def is_secret_key(key: str) -> bool:
    return key.lower().replace("-", "_") in SECRET_KEYS


def _redact(_: object, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in event:
        if is_secret_key(key):
            event[key] = REDACTED
    return event


def configure_logging(*, service: str, level: str = "INFO", json: bool | None = None) -> None:
    """Configure structlog and route stdlib logging (uvicorn, httpx) through it."""
    use_json = (not sys.stderr.isatty()) if json is None else json
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    renderer = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    # uvicorn's own logging config (if anything in this process ever applied it) gives its
    # loggers their own handlers and stops them propagating: take them back, so every line
    # is one JSON line of this service.
    for name in ("uvicorn", "uvicorn.error"):
        own = logging.getLogger(name)
        own.handlers = []
        own.propagate = True
    # uvicorn's access log duplicates our own request log line.
    logging.getLogger("uvicorn.access").disabled = True
    # Two lines per model call at INFO ("HTTP Request: POST ...", "AFC is enabled ...") that
    # say nothing our own answer line does not, at a classroom's rate: warnings and up only.
    for noisy in ("httpx", "httpx2", "google_genai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
