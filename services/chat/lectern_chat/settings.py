"""Chat orchestrator settings (own fields prefixed CHAT_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from lectern_common.settings import ServiceSettings


class ChatSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CHAT_", extra="ignore", populate_by_name=True)

    service_name: str = "chat"
    port: int = 8101
    retrieval_url: str = Field("http://127.0.0.1:8102", validation_alias="RETRIEVAL_URL")
    profile_url: str = Field("http://127.0.0.1:8103", validation_alias="PROFILE_URL")
