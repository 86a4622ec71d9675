"""Request and response bodies of the chat API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lectern_common.contracts import ChapterId

Mode = Literal["book", "selection"]
Status = Literal["streaming", "complete", "interrupted", "failed"]


class StreamRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=4000)
    conversation_id: UUID | None = None
    selected_text: str | None = Field(None, max_length=8000)
    chapter_id: ChapterId | None = None
    top_k: int = Field(5, ge=1, le=10)

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("message must not be blank")
        return value.strip()

    @field_validator("selected_text")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        # An empty selection is no selection: the question is about the book.
        if value is None or not value.strip():
            return None
        return value.strip()

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
    feedback: Literal["up", "down"] | None
    feedback_comment: str | None
    created_at: datetime
    completed_at: datetime | None


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
    comment: str | None = Field(None, max_length=1000)


class FeedbackOut(BaseModel):
    message_id: UUID
    rating: Literal["up", "down"]
    comment: str | None


class ClaimOut(BaseModel):
    claimed: int
