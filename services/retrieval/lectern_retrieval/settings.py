"""Retrieval service settings (own fields prefixed RETRIEVAL_; shared names without a prefix)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from lectern_common.settings import GeminiRequestTimeout, ServiceSettings, is_weak_secret


class RetrievalSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RETRIEVAL_")

    uses_redis: ClassVar[bool] = False
    pool_opened_at_start: ClassVar[bool] = True  # every answer searches

    service_name: str = "retrieval"
    port: int = 8102
    qdrant_url: str | None = Field(None, validation_alias="QDRANT_URL")
    qdrant_api_key: SecretStr = Field(SecretStr(""), validation_alias="QDRANT_API_KEY")
    qdrant_path: str = Field(".lectern/data/qdrant", validation_alias="QDRANT_PATH")
    # Named `dense` + `bm25` vectors: an index of the single-vector layout is refused, so the
    # default name moved on and an upgrade starts a fresh collection (the registry re-embeds).
    collection: str = "lectern_hybrid"

    admin_token: SecretStr = Field(SecretStr(""), validation_alias="ADMIN_TOKEN")

    # None: Gemini when GEMINI_API_KEY is set, else the local model.
    embeddings_provider: Literal["local", "gemini"] | None = Field(
        None, validation_alias="EMBEDDINGS_PROVIDER"
    )
    gemini_embedding_model: str = "gemini-embedding-001"
    gemini_embedding_dimension: int = Field(768, ge=128, le=3072)
    gemini_embedding_batch: int = Field(100, ge=1, le=100)
    # One embedding batch is one request; it gives up sooner than a generation may take.
    gemini_request_timeout_s: GeminiRequestTimeout = 60.0
    # One thread: on 2 cores a second one fights PostgreSQL and Qdrant (dense leg p50 47 -> 28 ms).
    local_embedding_threads: int = Field(1, ge=1, le=16)
    # Compute-bound on the CPU either way; small batches keep the peak memory low (~0.6 GB).
    local_embedding_batch: int = Field(8, ge=1, le=256)

    chunk_chars: int = Field(1200, ge=200, le=8000)
    # Server-side folder ingestion is allowed only below these folders (comma-separated).
    ingest_roots: str = ""
    max_upload_files: int = Field(2000, ge=1)
    max_file_bytes: int = Field(2 * 1024 * 1024, ge=1024)
    max_upload_bytes: int = Field(64 * 1024 * 1024, ge=1024)

    rrf_k: int = Field(60, ge=1)
    # Where the lexical leg runs: BM25 in PostgreSQL (tuned, the default until the engine's
    # BM25 is measured as good on held-out questions) or the index's own `bm25` sparse vectors,
    # fused with the dense leg in the same engine call.
    lexical: Literal["postgres", "engine"] = "postgres"
    # Per leg; measured on the gold set, 20 fused better than 40 (recall@5 0.815 vs 0.778).
    candidates: int = Field(20, ge=5, le=500)
    # BM25's term saturation and length normalisation (lexical.py says why 1 and 0).
    bm25_k1: float = Field(1.0, ge=0.0, le=10.0)
    bm25_b: float = Field(0.0, ge=0.0, le=1.0)
    # Rescore the top fused candidates (`rescoring.py`) when both legs are fused here.
    rescore: bool = True

    @property
    def provider(self) -> Literal["local", "gemini"]:
        if self.embeddings_provider:
            return self.embeddings_provider
        return "gemini" if self.gemini_enabled else "local"

    @model_validator(mode="after")
    def _check_admin_token(self) -> RetrievalSettings:
        if self.production and is_weak_secret(self.admin_token.get_secret_value()):
            raise ValueError("production mode needs a strong ADMIN_TOKEN (32+ characters)")
        if self.provider == "gemini" and not self.gemini_enabled:
            raise ValueError("EMBEDDINGS_PROVIDER=gemini needs GEMINI_API_KEY")
        return self
