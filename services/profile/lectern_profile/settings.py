"""Profile service settings (own fields prefixed PROFILE_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from lectern_common.settings import ServiceSettings, is_weak_secret


class ProfileSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PROFILE_")

    uses_redis: ClassVar[bool] = False

    service_name: str = "profile"
    port: int = 8103
    chat_url: str = Field("http://127.0.0.1:8101", validation_alias="CHAT_URL")
    auth_url: str = Field("http://127.0.0.1:8105", validation_alias="AUTH_URL")

    # The public URL Better Auth runs under: the JWT issuer and audience.
    better_auth_url: str = Field("http://127.0.0.1:8080", validation_alias="BETTER_AUTH_URL")
    # Signs session tokens (`token.signature`) in the bearer header and the session cookie.
    better_auth_secret: SecretStr = Field(SecretStr(""), validation_alias="BETTER_AUTH_SECRET")
    # Where Better Auth keeps its tables (services/auth/server.mjs creates them there).
    auth_schema: str = Field("auth", pattern=r"^[a-z_][a-z0-9_]{0,62}$")

    jwks_timeout_s: float = 3.0
    # An unknown `kid` refetches the JWKS at most this often, so forged kids cannot flood auth.
    jwks_min_refetch_s: float = 10.0
    # The audience a JWT must name; Better Auth issues them for its own URL (BETTER_AUTH_URL).
    jwt_audience: str | None = None
    # Clock skew tolerated between the auth server and this one.
    jwt_leeway_s: int = Field(5, ge=0, le=60)

    @property
    def jwks_url(self) -> str:
        return f"{self.auth_url.rstrip('/')}/api/auth/jwks"

    @property
    def expected_audience(self) -> str:
        return self.jwt_audience or self.better_auth_url

    @model_validator(mode="after")
    def _check_auth_secret(self) -> ProfileSettings:
        if self.production and is_weak_secret(self.better_auth_secret.get_secret_value()):
            raise ValueError("production mode needs a strong BETTER_AUTH_SECRET (32+ characters)")
        return self
