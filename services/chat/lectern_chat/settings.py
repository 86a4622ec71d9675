"""Chat service settings (own fields prefixed CHAT_)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from lectern_common.settings import UpstreamSettings, is_weak_secret


class ChatSettings(UpstreamSettings):
    model_config = SettingsConfigDict(env_prefix="CHAT_")
    pool_opened_at_start: ClassVar[bool] = True  # every answer stores itself

    service_name: str = "chat"
    port: int = 8101
    # The reader page's files: `web/` of the checkout this package runs from; an installed
    # copy (the Docker image) is told where they are.
    web_dir: Path = Path(__file__).resolve().parents[3] / "web"

    # The longest answer (the model client's timeouts and retries are the shared GEMINI_* ones).
    max_output_tokens: int = 2048
    # Rewriting a follow-up must not hold the answer up: past this, the raw question is used.
    rewrite_timeout_s: float = 4.0
    retrieval_timeout_s: float = 10.0
    profile_timeout_s: float = 2.0

    history_messages: int = 6
    history_chars: int = 2000
    snippet_chars: int = 300

    # Replay log of each answer's events in Redis (for Last-Event-ID resume), kept while the
    # answer runs, and `replay_done_ttl_s` once it ended: a resume after the end is a connection
    # that dropped at the last moment (the page retries within seconds), and the stored answer
    # is the record after that. An hour of finished logs at a classroom's rate (~5 kB each)
    # would be hundreds of MB of a free-tier Redis (docs/reliability.md, "Soak").
    replay_ttl_s: int = 3600
    replay_done_ttl_s: int = Field(120, ge=10)
    # The log is written behind the live stream, at most this often (the first and the last
    # event at once): one Redis round trip per model chunk cost ~11% of the chat's CPU.
    replay_flush_s: float = Field(0.2, ge=0.0, le=2.0)
    # A comment line on a stream that has been silent this long (proxies drop idle streams).
    sse_keepalive_s: float = Field(15.0, gt=0.0, le=60.0)
    # A reader who left may come back (Last-Event-ID) within this long before generation stops.
    detach_grace_s: float = 5.0
    # A resumed stream gives up when the log stays silent this long (the producer died).
    resume_idle_s: float = 60.0
    # No answer runs longer than this (it ends with `error answer_too_long`).
    stream_max_s: int = Field(600, ge=10)
    # The worker producing an answer refreshes its heartbeat in Redis every `heartbeat_s`; an
    # answer still `streaming` whose heartbeat has not been seen for `heartbeat_ttl_s` lost its
    # worker (killed, crashed) and is stored as failed `stream_lost` by whoever finds it: a
    # follow-up in its conversation, a resume, or the sweeper each worker runs every
    # `sweep_interval_s`. The TTL is many beats long, so a worker whose loop is busy for a few
    # seconds under a burst is not taken for dead.
    heartbeat_s: float = Field(1.0, gt=0.0, le=5.0)
    heartbeat_ttl_s: int = Field(10, ge=2)
    sweep_interval_s: float = Field(5.0, gt=0.0)
    # Open answers at once per owner (reader or guest token), and per client address for guests
    # (the gateway's X-Rate-Key `ip:<address>`): a guest without a token is a new owner with
    # every first question, so only the address bounds them. A classroom or an office shares
    # one NAT address, hence a larger cap per address than per owner.
    max_open_streams: int = 3
    max_open_streams_per_address: int = 20
    # The Redis pool (event log and stream slots): callers wait for a free connection (up to the
    # socket timeout) instead of failing when many answers stream at once. The first
    # `redis_min_connections` are opened at start-up (redis-py never closes one it opened), so a
    # burst does not connect in it and the server's client count does not climb with the day's
    # peak; more up to the maximum only under a larger burst.
    redis_min_connections: int = Field(32, ge=0)
    redis_max_connections: int = Field(256, ge=1)
    max_body_bytes: int = 131072

    # The extractive answerer (no API key) says the book does not cover a question when the
    # best retrieval score is below this or no passage shares a content word with it.
    extractive_min_score: float = 0.0
    extractive_max_sentences: int = 4

    # The admin credential of `GET /api/admin/insights` (unset: the view is disabled).
    admin_token: SecretStr = Field(SecretStr(""), validation_alias="ADMIN_TOKEN")
    # Insights read at most this many answers of each kind in a period (newest first).
    insights_max_rows: int = Field(5000, ge=10, le=100_000)
    # Two uncovered questions whose word sets overlap this much (Jaccard) are one group.
    insights_group_jaccard: float = Field(0.6, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _check_redis_pool(self) -> ChatSettings:
        if self.redis_min_connections > self.redis_max_connections:
            raise ValueError("CHAT_REDIS_MIN_CONNECTIONS is above CHAT_REDIS_MAX_CONNECTIONS")
        return self

    @model_validator(mode="after")
    def _check_admin_token(self) -> ChatSettings:
        token = self.admin_token.get_secret_value()
        if self.production and token and is_weak_secret(token):
            raise ValueError("production mode needs a strong ADMIN_TOKEN (32+ characters)")
        return self

    # Model tokens (prompt + output) each reader, or guest address, may spend per UTC day;
    # answers past it are extractive (labelled `fallback: budget`). 0: no limit.
    daily_token_budget: int = Field(0, ge=0)
