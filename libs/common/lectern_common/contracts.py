"""The internal contracts between services, as Pydantic models: the service that answers uses
them as its response models and the services that call parse replies with them, so a renamed
field breaks a test instead of a reader. Ids that several services accept are defined here once.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# ---- ids ----------------------------------------------------------------------------------
# A reader id as Better Auth issues it (and as the gateway passes it in X-User-Id).
USER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
# A chapter id: URL-safe, no slash, derived from the ingested source and the file path.
CHAPTER_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,199}$"
# An audience segment becomes part of a cache key and of a prompt: a plain token only.
SEGMENT_PATTERN = r"^[a-z0-9][a-z0-9_.:+-]{0,99}$"

USER_ID = re.compile(USER_ID_PATTERN)
CHAPTER_ID = re.compile(CHAPTER_ID_PATTERN)
SEGMENT = re.compile(SEGMENT_PATTERN)

UserId = Annotated[str, StringConstraints(pattern=USER_ID_PATTERN)]
ChapterId = Annotated[str, StringConstraints(pattern=CHAPTER_ID_PATTERN)]
Segment = Annotated[str, StringConstraints(pattern=SEGMENT_PATTERN)]


class Contract(BaseModel):
    """A reply read by another service: unknown fields are ignored (a newer answering service
    may add some), missing or mistyped ones are an error."""

    model_config = ConfigDict(extra="ignore", frozen=True)


# ---- retrieval: POST /internal/search -----------------------------------------------------
MAX_QUERY_CHARS = 2000
SearchQuery = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUERY_CHARS)
]


class SearchRequest(BaseModel):
    """The body of `POST /internal/search` (the public `/api/search` allows fewer results)."""

    model_config = ConfigDict(extra="forbid")

    query: SearchQuery
    top_k: int = Field(5, ge=1, le=50)
    chapter_id: ChapterId | None = None
    # The single legs exist for evaluation (a lexical-only baseline on the same chunks).
    mode: Literal["hybrid", "dense", "lexical"] = "hybrid"


class SearchResult(Contract):
    chunk_id: str
    chapter_id: str
    title: str
    section: str
    url: str
    source_path: str
    text: str
    score: float


class SearchResponse(Contract):
    results: list[SearchResult]


# ---- retrieval: chapters --------------------------------------------------------------------
class ChapterSummary(Contract):
    id: str
    title: str
    url: str
    source_path: str


class ChaptersResponse(Contract):
    chapters: list[ChapterSummary]


class ChapterSection(Contract):
    heading: str
    text: str


class Chapter(ChapterSummary):
    """`GET /internal/chapters/{chapter_id}`: `content_hash` changes exactly when `text` does."""

    source: str
    content_hash: str
    text: str
    sections: list[ChapterSection]


# ---- profile: GET /internal/profiles/{user_id} ----------------------------------------------
Level = Literal["none", "beginner", "intermediate", "advanced"]
HardwareAccess = Literal["simulation_only", "gpu_workstation", "jetson", "physical_robot"]
OperatingSystem = Literal["linux", "windows", "macos"]
AnswerDepth = Literal["brief", "standard", "detailed"]
GOALS_MAX_CHARS = 500
# The level fields with the name a prompt gives them.
LEVEL_FIELDS: dict[str, str] = {
    "python_level": "Python",
    "cpp_level": "C++",
    "ai_ml_level": "AI/ML",
    "ros2_level": "ROS 2",
}


class ReaderProfile(Contract):
    """A reader's background, as the profile service answers it (404 when there is none)."""

    user_id: str
    python_level: Level | None
    cpp_level: Level | None
    ai_ml_level: Level | None
    ros2_level: Level | None
    hardware_access: HardwareAccess | None
    operating_system: OperatingSystem | None
    answer_depth: AnswerDepth | None
    goals: str | None
    segment: Segment = Field(description="audience segment: <experience>-<hardware_access>")
    updated_at: datetime


# ---- chat: DELETE /internal/readers/{user_id}/conversations ---------------------------------
class ConversationsDeleted(Contract):
    deleted: int
