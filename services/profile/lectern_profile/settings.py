"""Profile service settings (own fields prefixed PROFILE_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from lectern_common.settings import ServiceSettings


class ProfileSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PROFILE_", extra="ignore", populate_by_name=True)

    service_name: str = "profile"
    port: int = 8103
    chat_url: str = Field("http://127.0.0.1:8101", validation_alias="CHAT_URL")
    auth_url: str = Field("http://127.0.0.1:8105", validation_alias="AUTH_URL")
