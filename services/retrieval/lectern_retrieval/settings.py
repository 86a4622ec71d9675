"""Retrieval service settings (own fields prefixed RETRIEVAL_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from lectern_common.settings import ServiceSettings


class RetrievalSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RETRIEVAL_", extra="ignore", populate_by_name=True)

    service_name: str = "retrieval"
    port: int = 8102
    qdrant_url: str | None = Field(None, validation_alias="QDRANT_URL")
    qdrant_path: str = Field(".lectern/data/qdrant", validation_alias="QDRANT_PATH")
