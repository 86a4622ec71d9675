"""Request and response models that only the retrieval service uses (the search and chapter
shapes other services read are in `lectern_common.contracts`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from lectern_common.contracts import STORABLE, ChapterId, SearchQuery

# The longest file name Linux opens (NAME_MAX, in bytes): a longer part is ENAMETOOLONG.
MAX_PATH_PART_BYTES = 255


class PublicSearchRequest(BaseModel):
    """The body of the public `POST /api/search`: fewer results than the internal search and
    no single-leg `mode` (that exists for the evaluation): an unknown field is refused, not
    ignored, and `top_k` must be a JSON number."""

    model_config = ConfigDict(extra="forbid")

    query: SearchQuery
    top_k: StrictInt = Field(5, ge=1, le=10)
    chapter_id: ChapterId | None = None


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


def openable_path(value: str) -> str:
    """`value` when the operating system can look it up: a NUL (checked by STORABLE before
    this) or a part over NAME_MAX would make `Path.resolve()` raise, a 500 instead of a 422."""
    for part in value.split("/"):
        if len(part.encode()) > MAX_PATH_PART_BYTES:
            raise ValueError(f"each part of the path must be at most {MAX_PATH_PART_BYTES} bytes")
    return value


class IngestPathRequest(BaseModel):
    source: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    path: Annotated[
        str,
        StringConstraints(min_length=1, max_length=1000),
        STORABLE,
        AfterValidator(openable_path),
    ]
    url_prefix: str | None = None
