"""What the chat service asks other services: the book passages for a question and the ids of
the book's chapters (retrieval), the reader's profile (profile), each reply parsed with its
contract model."""

from __future__ import annotations

import asyncio
import time

import structlog
from pydantic import ValidationError

from lectern_common.contracts import (
    ChaptersResponse,
    ReaderProfile,
    SearchRequest,
    SearchResponse,
)
from lectern_common.http import InternalClient, ServiceUnavailable

log = structlog.get_logger()


class RetrievalFailed(Exception):
    """The book search could not be used for this answer."""


class UnknownChapter(RetrievalFailed):
    """The search was limited to a chapter the book does not have (retrieval's 404)."""


class KnownChapters:
    """The ids of the book's chapters, so that a question about an unknown chapter is refused
    before its answer starts. Fetched from retrieval when the list is older than `ttl_s` or
    lacks the id asked about (a chapter ingested since), but never sooner than `recheck_s`
    after the last try, so unknown ids (or retrieval being down) cannot make every question
    cost a call."""

    def __init__(
        self, retrieval: InternalClient, *, ttl_s: float, recheck_s: float, timeout_s: float
    ) -> None:
        self.retrieval, self.ttl_s, self.recheck_s = retrieval, ttl_s, recheck_s
        self.timeout_s = timeout_s
        self._ids: frozenset[str] = frozenset()
        self._current = False  # whether the last try fetched the list
        self._tried = -float("inf")
        self._lock = asyncio.Lock()

    async def has(self, chapter_id: str) -> bool | None:
        """Whether the book has `chapter_id`; None when retrieval cannot say right now (the
        search then reports the outage as it would without this check)."""
        age = time.monotonic() - self._tried
        if chapter_id in self._ids and age < self.ttl_s:
            return True
        if age >= self.recheck_s:
            async with self._lock:  # one fetch for the questions that arrive meanwhile
                if time.monotonic() - self._tried >= self.recheck_s:
                    await self._fetch()
        return chapter_id in self._ids if self._current else None

    async def _fetch(self) -> None:
        self._tried, self._current = time.monotonic(), False
        try:
            response = await self.retrieval.get(
                "/api/chapters", timeout_s=self.timeout_s, retries=0
            )
            if response.status_code != 200:
                log.warning("chat.chapters_failed", status=response.status_code)
                return
            found = ChaptersResponse.model_validate_json(response.content)
        except (ServiceUnavailable, ValidationError) as exc:
            log.warning("chat.chapters_failed", error_type=type(exc).__name__)
            return
        self._ids, self._current = frozenset(c.id for c in found.chapters), True


async def search(
    retrieval: InternalClient, request: SearchRequest, *, timeout_s: float
) -> SearchResponse:
    """The passages found for `request`, best first, at most `request.top_k` of them, and the
    search's coverage verdict."""
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
    if response.status_code == 404 and request.chapter_id is not None:
        # The only 404 of the search: its chapter is gone (removed after the question's check).
        raise UnknownChapter
    if response.status_code != 200:
        log.warning("chat.retrieval_failed", status=response.status_code)
        raise RetrievalFailed
    try:
        found = SearchResponse.model_validate_json(response.content)
    except ValidationError as exc:  # an unreadable reply: no sources either way
        log.warning("chat.retrieval_failed", error_type=type(exc).__name__)
        raise RetrievalFailed from exc
    return found.model_copy(update={"results": found.results[: request.top_k]})


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
