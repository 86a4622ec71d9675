"""Every Prometheus metric a Lectern service exports, in one place and one naming scheme:
`lectern_<area>_<what>_<unit>`. Label values are bounded (route templates, model names, error
codes, never a path, a reader or a question). docs/OPERATIONS.md lists them.

With several workers per service each writes its samples to PROMETHEUS_MULTIPROC_DIR (serve.py
sets it and empties it at start) and /metrics adds them up; a gauge says how (`livesum`: the
sum over the live workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import asyncpg
from prometheus_client import Counter, Gauge, Histogram

# ---- HTTP (lectern_common.middleware) ----------------------------------------------------------
HTTP_REQUESTS = Counter(
    "lectern_http_requests_total", "HTTP requests", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "lectern_http_request_duration_seconds",
    "HTTP request latency (to last byte)",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
# When the service (its newest worker) started: a restart shows as a jump.
START_TIME = Gauge(
    "lectern_start_time_seconds",
    "When this service's newest worker started (unix time)",
    ["service"],
    multiprocess_mode="max",
)
DEPENDENCY_UP = Gauge(
    "lectern_dependency_up",
    "1 when the dependency answered the last readiness check, else 0",
    ["service", "dependency"],
    multiprocess_mode="mostrecent",
)
DEPENDENCY_LATENCY = Gauge(
    "lectern_dependency_check_seconds",
    "How long the last readiness check of the dependency took",
    ["service", "dependency"],
    multiprocess_mode="mostrecent",
)

# ---- stores ------------------------------------------------------------------------------------
DB_POOL_SIZE = Gauge(
    "lectern_db_pool_connections",
    "PostgreSQL pool connections by state (in_use, idle, max)",
    ["service", "state"],
    multiprocess_mode="livesum",
)
DB_POOL_WAITING = Gauge(
    "lectern_db_pool_waiting",
    "Requests waiting for a PostgreSQL pool connection",
    ["service"],
    multiprocess_mode="livesum",
)
REDIS_ERRORS = Counter(
    "lectern_redis_errors_total", "Redis commands that failed (connection or timeout)", ["service"]
)

# ---- model (lectern_common.gemini) -------------------------------------------------------------
MODEL_CALLS = Counter(
    "lectern_model_calls_total",
    "Model calls by operation (stream, generate, embed) and outcome (ok, error)",
    ["model", "operation", "outcome"],
)
MODEL_CALL_DURATION = Histogram(
    "lectern_model_call_duration_seconds",
    "Model call duration, retries included",
    ["model", "operation"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120),
)
MODEL_TOKENS = Counter(
    "lectern_model_tokens_total", "Model tokens by direction (in, out)", ["model", "direction"]
)
MODEL_RETRIES = Counter(
    "lectern_model_retries_total", "Model attempts made again after a failure", ["model"]
)
MODEL_FAILURES = Counter(
    "lectern_model_failures_total",
    "Failed model attempts by kind (llm_timeout, llm_rate_limited, llm_unavailable, ...)",
    ["model", "kind"],
)
MODEL_FAILURE_KINDS = (
    "llm_timeout",
    "llm_rate_limited",
    "llm_unavailable",
    "llm_rejected",
    "llm_empty",
    "llm_error",
)
EMBEDDING_CALLS = Counter(
    "lectern_embedding_calls_total",
    "Embedding calls by provider and kind (query, document)",
    ["provider", "kind"],
)
EMBEDDING_TEXTS = Counter(
    "lectern_embedding_texts_total", "Texts embedded by provider and kind", ["provider", "kind"]
)

# ---- chat --------------------------------------------------------------------------------------
CHAT_OPEN_STREAMS = Gauge(
    "lectern_chat_open_streams",
    "Answer event streams (SSE responses) open now",
    multiprocess_mode="livesum",
)
CHAT_ANSWERS_RUNNING = Gauge(
    "lectern_chat_answers_in_progress",
    "Answers being produced now",
    multiprocess_mode="livesum",
)
CHAT_ANSWERS = Counter("lectern_chat_answers_total", "Answers by outcome", ["status", "model"])
CHAT_TIME_TO_SOURCES = Histogram(
    "lectern_chat_time_to_sources_seconds",
    "From the question to the sources event",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)
CHAT_TIME_TO_FIRST_TOKEN = Histogram(
    "lectern_chat_time_to_first_token_seconds",
    "From the question to the first answer text",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30),
)

# ---- summary -----------------------------------------------------------------------------------
SUMMARY_OUTCOMES = Counter(
    "lectern_summary_outcomes_total",
    "Summary requests by how they were served (cached, waited, generated, failed, offline)",
    ["kind", "outcome"],
)
SUMMARY_CACHE = Counter(
    "lectern_summary_cache_lookups_total",
    "Summary cache lookups by result (hit, miss)",
    ["kind", "result"],
)
SUMMARY_FLIGHT_WAITS = Counter(
    "lectern_summary_flight_waits_total",
    "Requests that waited for another request (any replica) generating the same text",
    ["kind"],
)

# ---- retrieval ---------------------------------------------------------------------------------
SEARCH_LEG_LATENCY = Histogram(
    "lectern_search_leg_duration_seconds",
    "Search latency per leg (dense, lexical, engine: both fused in the vector engine)",
    ["leg"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
)
SEARCH_LATENCY = Histogram(
    "lectern_search_duration_seconds",
    "Whole search latency by mode",
    ["mode"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
)
INGEST_RUNNING = Gauge(
    "lectern_ingest_in_progress", "Ingests running now", multiprocess_mode="livesum"
)
INGEST_DOCUMENTS = Counter(
    "lectern_ingest_documents_total",
    "Documents an ingest went through, by action (changed, unchanged, deleted)",
    ["action"],
)
INGEST_EMBEDDED = Counter(
    "lectern_ingest_embedded_chunks_total", "Chunks embedded and stored by ingests"
)
INGEST_REMAINING = Gauge(
    "lectern_ingest_remaining_chunks",
    "Chunks the running ingests still have to embed",
    multiprocess_mode="livesum",
)
INGEST_LAST_SUCCESS = Gauge(
    "lectern_ingest_last_success_time_seconds",
    "When the last ingest finished (unix time)",
    multiprocess_mode="max",
)


# The service this process serves (set once by service_started, from build_app).
_service = {"name": "unknown"}


def service_started(service: str) -> None:
    _service["name"] = service
    START_TIME.labels(service).set(time.time())
    REDIS_ERRORS.labels(service)


def redis_failed() -> None:
    REDIS_ERRORS.labels(_service["name"]).inc()


def model_known(model: str) -> None:
    """Every series of a model exists from the start, at zero: a rate over it is 0, not
    missing, before the first failure."""
    for kind in MODEL_FAILURE_KINDS:
        MODEL_FAILURES.labels(model, kind)
    MODEL_RETRIES.labels(model)
    for direction in ("in", "out"):
        MODEL_TOKENS.labels(model, direction)


def pool_waiting(pool: asyncpg.Pool) -> int:
    """Acquires waiting for a connection (asyncpg keeps them on its internal queue)."""
    queue = getattr(pool, "_queue", None)
    return len(getattr(queue, "_getters", ()) or ())


def record_pool(service: str, pool: asyncpg.Pool) -> None:
    size, idle = pool.get_size(), pool.get_idle_size()
    DB_POOL_SIZE.labels(service, "in_use").set(size - idle)
    DB_POOL_SIZE.labels(service, "idle").set(idle)
    DB_POOL_SIZE.labels(service, "max").set(pool.get_max_size())
    DB_POOL_WAITING.labels(service).set(pool_waiting(pool))


@contextlib.asynccontextmanager
async def watching_pool(
    service: str, pool: asyncpg.Pool, every_s: float = 1.0
) -> AsyncIterator[None]:
    """Samples the pool's gauges every `every_s` while the block runs (each worker its own)."""

    async def sample() -> None:
        while True:
            record_pool(service, pool)
            await asyncio.sleep(every_s)

    task = asyncio.create_task(sample())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
