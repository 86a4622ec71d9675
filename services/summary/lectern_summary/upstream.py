"""What the summary service asks other services: a chapter's text and hash (retrieval) and a
reader's audience segment (profile)."""

from __future__ import annotations

import re

import structlog
from pydantic import ValidationError

from lectern_common.errors import ApiError, NotFound
from lectern_common.http import InternalClient, ServiceUnavailable
from lectern_summary.schemas import Chapter

log = structlog.get_logger()

# A segment becomes part of a cache key and of a prompt, so only a plain token is accepted.
_SEGMENT = re.compile(r"^[a-z0-9][a-z0-9_.:+-]{0,99}$")


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
    """The reader's audience segment; 409 when the reader has not made a profile yet."""
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
    segment = response.json().get("segment")
    if not isinstance(segment, str) or not _SEGMENT.match(segment):
        log.warning("profile.segment_invalid")
        raise ServiceUnavailable("profile", "invalid segment")
    return segment
