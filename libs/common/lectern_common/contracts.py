"""The internal contracts between services, as Pydantic models: the service that answers uses
them as its response models and the services that call parse replies with them, so a renamed
field breaks a test instead of a reader. Ids that several services accept, and what a text a
client sends may contain (`STORABLE`), are defined here once.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

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


# ---- text a client sends ----------------------------------------------------------------
# Every text field of a public request is checked for what the stores accept and what a reader
# can be shown, once, at the edge (422 otherwise, never a 500 from the store):
# - NUL (PostgreSQL's text refuses 0x00) and unpaired surrogates (JSON `"\ud800"` parses into a
#   Python str that no UTF-8 encoder, asyncpg's included, can encode) are refused;
# - other control characters are refused too, except tab, line feed and carriage return:
#   nobody types them, and in a stored question or title they garble what a reader sees;
# - so are the bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069),
#   which make text display in another order than it is stored ("Trojan Source"); right-to-left
#   text itself, and the LRM/RLM/ALM marks, are fine.
# Text is refused rather than silently cleaned: the client learns what was wrong.
_NOT_STORABLE = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def storable_text(value: str) -> str:
    """`value` unchanged when the stores accept it and it displays as stored; ValueError names
    the first character that does not."""
    found = _NOT_STORABLE.search(value)
    if found:
        raise ValueError(f"must not contain the character U+{ord(found.group()):04X}")
    return value


# The last part of every client text type, after its length constraints, as in SearchQuery:
# `Annotated[str, StringConstraints(max_length=...), STORABLE]` (with the constraint after
# the check, an optional field would report its length limit in "items after validation").
STORABLE = AfterValidator(storable_text)


class Contract(BaseModel):
    """A reply read by another service: unknown fields are ignored (a newer answering service
    may add some), missing or mistyped ones are an error."""

    model_config = ConfigDict(extra="ignore", frozen=True)


# ---- retrieval: POST /internal/search -----------------------------------------------------
MAX_QUERY_CHARS = 2000
SearchQuery = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUERY_CHARS),
    STORABLE,
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


class Coverage(Contract):
    """Whether the book covers the question: `score` is the evidence the verdict was based on
    (the nearest passage's closeness less a penalty per specific term the book never
    mentions; below the calibrated threshold the verdict is `not_covered`)."""

    verdict: Literal["covered", "not_covered"]
    score: float


class SearchResponse(Contract):
    results: list[SearchResult]
    coverage: Coverage


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
# The languages an answer can be written in (Urdu first): the reader's default in the profile,
# and chat's `language` in a question.
AnswerLanguage = Literal["ur", "en"]
GOALS_MAX_CHARS = 500
Goals = Annotated[str, StringConstraints(max_length=GOALS_MAX_CHARS), STORABLE]
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
    # Optional with a default: a profile service older than the field still answers validly.
    language: AnswerLanguage | None = None
    segment: Segment = Field(description="audience segment: <experience>-<hardware_access>")
    updated_at: datetime


# ---- chat: DELETE /internal/readers/{user_id}/conversations ---------------------------------
class ConversationsDeleted(Contract):
    deleted: int
