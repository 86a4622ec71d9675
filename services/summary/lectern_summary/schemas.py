"""Request and response models of the summary service (what it reads from other services is in
`lectern_common.contracts`)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Language(StrEnum):
    """Languages a chapter can be translated into (ISO 639-1 codes)."""

    ur = "ur"
    hi = "hi"
    ar = "ar"
    es = "es"
    fr = "fr"
    de = "de"
    zh = "zh"


# Each language's English name, for the prompt.
LANGUAGES: dict[str, str] = {
    Language.ur: "Urdu",
    Language.hi: "Hindi",
    Language.ar: "Arabic",
    Language.es: "Spanish",
    Language.fr: "French",
    Language.de: "German",
    Language.zh: "Chinese (Simplified)",
}


class Kind(StrEnum):
    summary = "summary"
    personalized = "personalized"
    translation = "translation"


class SummaryOut(BaseModel):
    chapter_id: str
    summary: str
    cached: bool
    model: str
    generated_at: datetime | None


class ChapterVersionOut(BaseModel):
    """A personalized or translated chapter (the JSON form; SSE streams the same text)."""

    chapter_id: str
    kind: Kind
    audience: str = Field(description="the profile segment, or the language code")
    text: str
    cached: bool
    model: str
    generated_at: datetime | None


class TranslationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: Language
