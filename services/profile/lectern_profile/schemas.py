"""Request and response models of the profile service (the field values of DESIGN.md "Profiles";
the profile itself, as every service reads it, is `lectern_common.contracts.ReaderProfile`)."""

from __future__ import annotations

from typing import get_args

from pydantic import BaseModel, ConfigDict

from lectern_common.contracts import (
    GOALS_MAX_CHARS,
    AnswerDepth,
    AnswerLanguage,
    Goals,
    HardwareAccess,
    Level,
    OperatingSystem,
)

FIELDS = (
    "python_level",
    "cpp_level",
    "ai_ml_level",
    "ros2_level",
    "hardware_access",
    "operating_system",
    "answer_depth",
    "goals",
    "language",
)


class ProfileUpdate(BaseModel):
    """PUT body: every field optional; a field left out keeps its value, null clears it."""

    model_config = ConfigDict(extra="forbid")

    python_level: Level | None = None
    cpp_level: Level | None = None
    ai_ml_level: Level | None = None
    ros2_level: Level | None = None
    hardware_access: HardwareAccess | None = None
    operating_system: OperatingSystem | None = None
    answer_depth: AnswerDepth | None = None
    goals: Goals | None = None
    language: AnswerLanguage | None = None

    def changes(self) -> dict[str, str | None]:
        return {name: getattr(self, name) for name in FIELDS if name in self.model_fields_set}


class ProfileDeleted(BaseModel):
    profile_deleted: bool
    conversations_deleted: int


class ProfileOptions(BaseModel):
    python_level: list[str] = list(get_args(Level))
    cpp_level: list[str] = list(get_args(Level))
    ai_ml_level: list[str] = list(get_args(Level))
    ros2_level: list[str] = list(get_args(Level))
    hardware_access: list[str] = list(get_args(HardwareAccess))
    operating_system: list[str] = list(get_args(OperatingSystem))
    answer_depth: list[str] = list(get_args(AnswerDepth))
    language: list[str] = list(get_args(AnswerLanguage))
    goals_max_chars: int = GOALS_MAX_CHARS
