"""The settings base every service extends: shared names (no prefix) plus the service's own."""

from __future__ import annotations

import secrets
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lectern_common.gemini import GeminiConfig

WEAK_SECRETS = {"", "changeme", "change-me", "secret", "admin", "password", "dev", "test"}


class ServiceSettings(BaseSettings):
    """Fields shared by all services; subclasses set `env_prefix` for their own fields."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)
    # Whether the service opens Redis: production mode requires REDIS_URL only where it does.
    uses_redis: ClassVar[bool] = True

    service_name: str = "lectern"
    env: Literal["local", "production"] = Field("local", validation_alias="LECTERN_ENV")
    host: str = "127.0.0.1"
    port: int = 8000

    database_url: str | None = Field(None, validation_alias="DATABASE_URL")
    database_pool_min: int = Field(1, validation_alias="DATABASE_POOL_MIN")
    database_pool_max: int = Field(10, validation_alias="DATABASE_POOL_MAX")
    redis_url: str | None = Field(None, validation_alias="REDIS_URL")
    # Every Redis key starts with this, so several stacks (or test runs) can share one server.
    redis_prefix: str = Field("lectern:", validation_alias="REDIS_PREFIX")

    # The gateway adds this header to every request it forwards and services add it to their
    # internal calls; a request without it never gets its X-User-Id trusted.
    internal_token: SecretStr = Field(SecretStr(""), validation_alias="INTERNAL_TOKEN")

    gemini_api_key: SecretStr = Field(SecretStr(""), validation_alias="GEMINI_API_KEY")
    gemini_base_url: str | None = Field(None, validation_alias="GEMINI_BASE_URL")
    gemini_model: str = Field("gemini-2.5-flash", validation_alias="GEMINI_MODEL")

    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")
    log_json: bool | None = Field(None, validation_alias="LOG_JSON")
    http_timeout_s: float = Field(10.0, validation_alias="INTERNAL_HTTP_TIMEOUT_S")

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def gemini_enabled(self) -> bool:
        return bool(self.gemini_api_key.get_secret_value())

    def gemini_config(self, **tuning: Any) -> GeminiConfig:
        """The model client's config from the shared GEMINI_* names plus a service's tuning."""
        return GeminiConfig(
            api_key=self.gemini_api_key.get_secret_value(),
            model=self.gemini_model,
            base_url=self.gemini_base_url,
            **tuning,
        )

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


def is_weak_secret(value: str) -> bool:
    return value.strip().lower() in WEAK_SECRETS or len(value) < 32


def new_secret() -> str:
    return secrets.token_urlsafe(32)
