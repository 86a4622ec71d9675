"""Request and response bodies of the chat API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, field_validator

from lectern_common.contracts import STORABLE, AnswerLanguage, ChapterId

Mode = Literal["book", "selection"]
Status = Literal["streaming", "complete", "interrupted", "failed"]


# What a reader types or selects: stored as sent, less the surrounding whitespace.
Message = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000), STORABLE
]
SelectedText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=8000), STORABLE]
FeedbackComment = Annotated[str, StringConstraints(max_length=1000), STORABLE]


class StreamRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: Message
    conversation_id: UUID | None = None
    selected_text: SelectedText | None = None
    chapter_id: ChapterId | None = None
    # Strict: `"5"` or `true` is a client's mistake, not a number to guess at.
    top_k: StrictInt = Field(5, ge=1, le=10)
    # The answer's language; unset: the reader's profile default, else the question's own.
    language: AnswerLanguage | None = None

    @field_validator("selected_text")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        # An empty selection is no selection: the question is about the book.
        return value or None

    @property
    def mode(self) -> Mode:
        return "selection" if self.selected_text else "book"


class Source(BaseModel):
    n: int
    chapter_id: str
    title: str
    section: str
    url: str
    source_path: str
    score: float
    snippet: str


class CitationCheck(BaseModel):
    """One cited marker checked against its source's passage (citations.py)."""

    n: int
    supported: bool
    score: float | None
    dangling: bool


class MessageOut(BaseModel):
    id: UUID
    role: Literal["user", "assistant"]
    content: str
    mode: Mode
    selected_text: str | None
    chapter_id: str | None
    query: str | None
    sources: list[Source]
    citations: list[int]
    status: Status
    finish_reason: str | None
    error: dict | None
    timings_ms: dict
    usage: dict
    model: str | None
    language: str | None
    feedback: Literal["up", "down"] | None
    feedback_comment: str | None
    created_at: datetime
    completed_at: datetime | None
    citation_checks: list[CitationCheck] = []
    # Why an answer is extractive although a model is configured (rate_limited, unavailable,
    # timeout, budget); None for a model's answer.
    fallback: str | None = None


class ConversationSummary(BaseModel):
    id: UUID
    title: str
    created_at: datetime
    updated_at: datetime
    message_count: int


class ConversationList(BaseModel):
    conversations: list[ConversationSummary]


class ConversationOut(BaseModel):
    id: UUID
    title: str
    created_at: datetime
    updated_at: datetime
    messages: list[MessageOut]


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: Literal["up", "down"]
    comment: FeedbackComment | None = None


class FeedbackOut(BaseModel):
    message_id: UUID
    rating: Literal["up", "down"]
    comment: str | None


class ClaimOut(BaseModel):
    claimed: int


class InsightsPeriod(BaseModel):
    days: int
    since: datetime
    until: datetime


class ChapterCited(BaseModel):
    chapter_id: str
    title: str | None
    questions: int


class UncoveredGroup(BaseModel):
    question: str  # the group's first (most recent) question
    query: str | None  # what the book was searched for (English)
    count: int
    readers: int  # how many different readers asked it
    variants: list[str]
    last_asked: datetime


class Uncovered(BaseModel):
    questions: int
    groups: list[UncoveredGroup]


class DownRated(BaseModel):
    message_id: UUID
    question: str
    answer: str  # its first 500 characters
    comment: str | None
    rated_at: datetime
    reader: str  # opaque: an HMAC of the conversation's owner
    chapters: list[str]  # the chapters its citations point at


class CitationShare(BaseModel):
    checked: int
    unsupported: int
    share: float | None  # None while no citation was checked


class Insights(BaseModel):
    period: InsightsPeriod
    chapters: list[ChapterCited]
    uncovered: Uncovered
    down_rated: list[DownRated]
    citations: CitationShare
