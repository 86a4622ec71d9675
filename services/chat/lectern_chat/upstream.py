"""What the chat service asks other services: the book passages for a question (retrieval) and
the reader's profile (profile), each reply parsed with its contract model."""

from __future__ import annotations

import structlog
from pydantic import ValidationError

from lectern_common.contracts import ReaderProfile, SearchRequest, SearchResponse, SearchResult
from lectern_common.http import InternalClient, ServiceUnavailable

log = structlog.get_logger()


class RetrievalFailed(Exception):
    """The book search could not be used for this answer."""


async def search(
    retrieval: InternalClient, request: SearchRequest, *, timeout_s: float
) -> list[SearchResult]:
    """The passages found for `request`, best first, at most `request.top_k` of them."""
    try:
        response = await retrieval.post(
            "/internal/search",
            json=request.model_dump(mode="json"),
            retry_posts=True,
            timeout_s=timeout_s,
        )
    except ServiceUnavailable as exc:  # unreachable, timed out or cut off mid-reply
        log.warning("chat.retrieval_failed", error_type=type(exc).__name__)
        raise RetrievalFailed from exc
    if response.status_code != 200:
        log.warning("chat.retrieval_failed", status=response.status_code)
        raise RetrievalFailed
    try:
        found = SearchResponse.model_validate_json(response.content)
    except ValidationError as exc:  # an unreadable reply: no sources either way
        log.warning("chat.retrieval_failed", error_type=type(exc).__name__)
        raise RetrievalFailed from exc
    return found.results[: request.top_k]


async def reader_profile(
    profile: InternalClient, user_id: str | None, *, timeout_s: float
) -> ReaderProfile | None:
    """The reader's profile, or None (guest, no profile, or profile service trouble: an answer
    without personalisation beats no answer)."""
    if user_id is None:
        return None
    try:
        response = await profile.get(f"/internal/profiles/{user_id}", timeout_s=timeout_s)
    except ServiceUnavailable as exc:
        log.warning("chat.profile_failed", error_type=type(exc).__name__)
        return None
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        log.warning("chat.profile_failed", status=response.status_code)
        return None
    try:
        return ReaderProfile.model_validate_json(response.content)
    except ValidationError as exc:
        log.warning("chat.profile_failed", error_type=type(exc).__name__)
        return None
