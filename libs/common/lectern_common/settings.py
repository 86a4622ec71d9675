"""The settings base every service extends: shared names (no prefix) plus the service's own."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lectern_common.db import is_pooled_url
from lectern_common.llm import GeminiConfig

WEAK_SECRETS = {"", "changeme", "change-me", "secret", "admin", "password", "dev", "test"}

# The model client's tuning, one unprefixed name per setting in every service. A service that
# needs another default declares the field again with its type (the name comes with it).
GeminiFirstTokenTimeout = Annotated[
    float, Field(gt=0, validation_alias="GEMINI_FIRST_TOKEN_TIMEOUT_S")
]
GeminiBetweenTokensTimeout = Annotated[
    float, Field(gt=0, validation_alias="GEMINI_BETWEEN_TOKENS_TIMEOUT_S")
]
GeminiRequestTimeout = Annotated[float, Field(gt=0, validation_alias="GEMINI_REQUEST_TIMEOUT_S")]
GeminiMaxAttempts = Annotated[int, Field(ge=1, validation_alias="GEMINI_MAX_ATTEMPTS")]
GeminiBackoffBase = Annotated[float, Field(ge=0, validation_alias="GEMINI_BACKOFF_BASE_S")]


class ServiceSettings(BaseSettings):
    """Fields shared by all services; subclasses set `env_prefix` for their own fields."""

    # No populate_by_name: with it, an aliased field is also read under the service prefix
    # (SUMMARY_DATABASE_URL, CHAT_GEMINI_MODEL), a second name for one setting.
    model_config = SettingsConfigDict(env_file=None, extra="ignore")
    # Whether the service opens Redis: production mode requires REDIS_URL only where it does.
    uses_redis: ClassVar[bool] = True
    # Whether the service opens its whole PostgreSQL pool at start-up (DATABASE_POOL_MIN unset):
    # the services on every answer's path (chat, retrieval) then serve a classroom's burst
    # without connecting in it, and hold the same connections all day instead of the day's
    # peak (docs/reliability.md, "Soak"). The others open one and grow under a burst.
    pool_opened_at_start: ClassVar[bool] = False

    service_name: str = "lectern"
    env: Literal["local", "production"] = Field("local", validation_alias="LECTERN_ENV")
    host: str = "127.0.0.1"
    port: int = 8000

    database_url: str | None = Field(None, validation_alias="DATABASE_URL")
    # Connections opened at start-up and kept (unset: the service's `pool_opened_at_start`),
    # and the most a burst may open; those above the floor close after `database_pool_idle_s`.
    database_pool_min: int | None = Field(None, ge=0, validation_alias="DATABASE_POOL_MIN")
    database_pool_max: int = Field(10, ge=1, validation_alias="DATABASE_POOL_MAX")
    # Seconds an unused pool connection stays open (asyncpg's default: 300).
    database_pool_idle_s: float = Field(60.0, gt=0, validation_alias="DATABASE_POOL_IDLE_S")
    # DATABASE_URL goes through PgBouncer in transaction mode (Neon's pooled URL): no named
    # prepared statements then. Unset: true exactly for a Neon `-pooler` host (docs/deploy.md).
    database_pooled: bool | None = Field(None, validation_alias="DATABASE_POOLED")
    redis_url: str | None = Field(None, validation_alias="REDIS_URL")
    # Every Redis key starts with this, so several stacks (or test runs) can share one server.
    redis_prefix: str = Field("lectern:", validation_alias="REDIS_PREFIX")

    # The key of the signed assertions (lectern_common.trust): profile's forwardAuth answer signs
    # one for the gateway to forward and services sign their own calls; a request without a
    # valid one never gets its X-User-Id trusted. The gateway never holds it.
    internal_token: SecretStr = Field(SecretStr(""), validation_alias="INTERNAL_TOKEN")

    gemini_api_key: SecretStr = Field(SecretStr(""), validation_alias="GEMINI_API_KEY")
    gemini_base_url: str | None = Field(None, validation_alias="GEMINI_BASE_URL")
    gemini_model: str = Field("gemini-2.5-flash", validation_alias="GEMINI_MODEL")
    # A stream gives up when its first piece, or the next one, takes longer than this.
    gemini_first_token_timeout_s: GeminiFirstTokenTimeout = 20.0
    gemini_between_tokens_timeout_s: GeminiBetweenTokensTimeout = 20.0
    # One whole request: a one-shot generation or an embedding batch.
    gemini_request_timeout_s: GeminiRequestTimeout = 120.0
    # 429/5xx/network failures are tried again (a stream only before its first piece), waiting
    # up to backoff_base_s * 2^(attempt-1) in between.
    gemini_max_attempts: GeminiMaxAttempts = 3
    gemini_backoff_base_s: GeminiBackoffBase = 0.5

    # The largest request body, under the service's prefix (CHAT_MAX_BODY_BYTES, ...): the
    # bodies are small JSON documents; one over this is refused with 413 before it is read.
    max_body_bytes: int = Field(64 * 1024, ge=1024)

    # SIGTERM (lectern_common.draining): /ready is 503 for `drain_notice_s` before the service
    # stops accepting; open answer streams get up to `shutdown_grace_s` to finish.
    shutdown_grace_s: float = Field(20.0, ge=0, validation_alias="SHUTDOWN_GRACE_S")
    drain_notice_s: float = Field(1.0, ge=0, validation_alias="DRAIN_NOTICE_S")

    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")
    log_json: bool | None = Field(None, validation_alias="LOG_JSON")
    http_timeout_s: float = Field(10.0, validation_alias="INTERNAL_HTTP_TIMEOUT_S")
    # Each internal client's circuit breaker: open after this many failed calls in a row, fail
    # fast for the cool-down, then let one call through; each failed probe doubles the
    # cool-down, up to the longest.
    breaker_failures: int = Field(5, ge=1, validation_alias="INTERNAL_BREAKER_FAILURES")
    breaker_cooldown_s: float = Field(0.5, gt=0, validation_alias="INTERNAL_BREAKER_COOLDOWN_S")
    breaker_max_cooldown_s: float = Field(
        10.0, gt=0, validation_alias="INTERNAL_BREAKER_MAX_COOLDOWN_S"
    )

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def database_pool_floor(self) -> int:
        """The connections the pool opens at start-up and keeps."""
        if self.database_pool_min is not None:
            return self.database_pool_min
        return self.database_pool_max if self.pool_opened_at_start else 1

    @property
    def database_is_pooled(self) -> bool:
        if self.database_pooled is not None:
            return self.database_pooled
        return bool(self.database_url) and is_pooled_url(self.database_url or "")

    @property
    def gemini_enabled(self) -> bool:
        return bool(self.gemini_api_key.get_secret_value())

    def gemini_config(
        self, *, max_output_tokens: int = GeminiConfig.max_output_tokens
    ) -> GeminiConfig:
        """The model client's config from the GEMINI_* settings; `max_output_tokens` is the
        ceiling of a call that does not name its own."""
        return GeminiConfig(
            api_key=self.gemini_api_key.get_secret_value(),
            model=self.gemini_model,
            base_url=self.gemini_base_url,
            max_output_tokens=max_output_tokens,
            first_token_timeout_s=self.gemini_first_token_timeout_s,
            between_tokens_timeout_s=self.gemini_between_tokens_timeout_s,
            request_timeout_s=self.gemini_request_timeout_s,
            max_attempts=self.gemini_max_attempts,
            backoff_base_s=self.gemini_backoff_base_s,
        )

    @model_validator(mode="after")
    def _check_pool(self) -> ServiceSettings:
        if self.database_pool_floor > self.database_pool_max:
            raise ValueError(
                f"DATABASE_POOL_MIN ({self.database_pool_min}) is above DATABASE_POOL_MAX"
                f" ({self.database_pool_max})"
            )
        return self

    @model_validator(mode="after")
    def _check_production(self) -> ServiceSettings:
        if self.production:
            needed = [("DATABASE_URL", self.database_url)]
            if self.uses_redis:
                needed.append(("REDIS_URL", self.redis_url))
            missing = [name for name, value in needed if not value]
            if missing:
                raise ValueError(f"production mode needs {', '.join(missing)}")
            if is_weak_secret(self.internal_token.get_secret_value()):
                raise ValueError("production mode needs a strong INTERNAL_TOKEN (32+ characters)")
        return self


class UpstreamSettings(ServiceSettings):
    """A service that calls retrieval (passages, chapters) and profile (the reader's profile):
    chat and summary."""

    retrieval_url: str = Field("http://127.0.0.1:8102", validation_alias="RETRIEVAL_URL")
    profile_url: str = Field("http://127.0.0.1:8103", validation_alias="PROFILE_URL")


def is_weak_secret(value: str) -> bool:
    return value.strip().lower() in WEAK_SECRETS or len(value) < 32
