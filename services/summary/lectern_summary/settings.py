"""Summary service settings (own fields prefixed SUMMARY_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from lectern_common.settings import ServiceSettings


class SummarySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SUMMARY_", extra="ignore", populate_by_name=True)

    service_name: str = "summary"
    port: int = 8104
    retrieval_url: str = Field("http://127.0.0.1:8102", validation_alias="RETRIEVAL_URL")
    profile_url: str = Field("http://127.0.0.1:8103", validation_alias="PROFILE_URL")
