"""The service's typed state and the FastAPI dependencies routes use (state, admin check)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Header, Request

from lectern_common.errors import ApiError
from lectern_common.health import Check
from lectern_common.stores import dependency_checks
from lectern_common.tasks import BackgroundTasks
from lectern_retrieval.embeddings import Embedder
from lectern_retrieval.ingest import Ingestor
from lectern_retrieval.search import Searcher
from lectern_retrieval.settings import RetrievalSettings
from lectern_retrieval.vectors import VectorStore


@dataclass
class RetrievalState:
    settings: RetrievalSettings
    pool: asyncpg.Pool
    embedder: Embedder
    vectors: VectorStore
    searcher: Searcher
    ingestor: Ingestor
    # Ingests that outlive the request that started them (a streamed ingest whose client left).
    background: BackgroundTasks

    def checks(self) -> dict[str, Check]:
        return {**dependency_checks(pool=self.pool), "qdrant": self.vectors.count}


async def retrieval_state(request: Request) -> RetrievalState:
    return request.state.retrieval


State = Annotated[RetrievalState, Depends(retrieval_state)]


async def require_admin(
    state: State, authorization: Annotated[str | None, Header(include_in_schema=False)] = None
) -> None:
    expected = state.settings.admin_token.get_secret_value()
    if not expected:
        raise ApiError(403, "forbidden", "the admin API is disabled (ADMIN_TOKEN is not set)")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), expected.encode()
    ):
        raise ApiError(
            401, "unauthorized", "admin credential required", headers={"WWW-Authenticate": "Bearer"}
        )


Admin = Depends(require_admin)
