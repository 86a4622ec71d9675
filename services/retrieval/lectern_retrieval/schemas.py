"""Request and response models of the retrieval API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

CHAPTER_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,199}$"
MAX_QUERY_CHARS = 2000

Query = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUERY_CHARS)
]
ChapterId = Annotated[str, StringConstraints(pattern=CHAPTER_ID_PATTERN)]


class SearchRequest(BaseModel):
    query: Query
    top_k: int = Field(5, ge=1, le=10)
    chapter_id: ChapterId | None = None


class InternalSearchRequest(SearchRequest):
    top_k: int = Field(5, ge=1, le=50)
    # The single legs exist for evaluation (a lexical-only baseline on the same chunks).
    mode: Literal["hybrid", "dense", "lexical"] = "hybrid"


class SearchResult(BaseModel):
    chunk_id: str
    chapter_id: str
    title: str
    section: str
    url: str
    source_path: str
    text: str
    score: float


class SearchResponse(BaseModel):
    results: list[SearchResult]


class ChapterSummary(BaseModel):
    id: str
    title: str
    url: str
    source_path: str


class ChaptersResponse(BaseModel):
    chapters: list[ChapterSummary]


class ChapterSection(BaseModel):
    heading: str
    text: str


class Chapter(ChapterSummary):
    source: str
    content_hash: str
    text: str
    sections: list[ChapterSection]


class IngestSummary(BaseModel):
    source: str
    files: int
    chunks: int
    new: int
    updated: int
    unchanged: int
    removed: int
    embeddings_computed: int
    seconds: float


class IngestPathRequest(BaseModel):
    source: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    path: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    url_prefix: str | None = None
