"""What the summary service asks other services, parsed with their contracts: a chapter's text
and hash (retrieval) and a reader's audience segment (profile)."""

from __future__ import annotations

import structlog
from pydantic import ValidationError

from lectern_common.contracts import Chapter, ReaderProfile
from lectern_common.errors import ApiError, NotFound
from lectern_common.http import InternalClient, ServiceUnavailable

log = structlog.get_logger()


async def fetch_chapter(retrieval: InternalClient, chapter_id: str) -> Chapter:
    response = await retrieval.get(f"/internal/chapters/{chapter_id}")
    if response.status_code == 404:
        raise NotFound("chapter")
    if response.status_code != 200:
        log.warning("retrieval.chapter_failed", chapter_id=chapter_id, status=response.status_code)
        raise ServiceUnavailable("retrieval", f"status {response.status_code}")
    try:
        return Chapter.model_validate_json(response.content)
    except ValidationError as exc:
        log.warning("retrieval.chapter_invalid", chapter_id=chapter_id, errors=exc.error_count())
        raise ServiceUnavailable("retrieval", "invalid chapter") from exc


async def reader_segment(profile: InternalClient, user_id: str) -> str:
    """The reader's audience segment; 409 when the reader has not made a profile yet. The
    segment becomes part of a cache key and of a prompt: the contract admits a plain token only,
    and anything else is the profile service's fault (503), never the reader's."""
    response = await profile.get(f"/internal/profiles/{user_id}")
    if response.status_code == 404:
        raise ApiError(
            409,
            "profile_required",
            "tell the book about your background first (PUT /api/profile/me)",
        )
    if response.status_code != 200:
        log.warning("profile.lookup_failed", status=response.status_code)
        raise ServiceUnavailable("profile", f"status {response.status_code}")
    try:
        return ReaderProfile.model_validate_json(response.content).segment
    except ValidationError as exc:
        log.warning("profile.invalid", errors=exc.error_count())
        raise ServiceUnavailable("profile", "invalid profile") from exc
