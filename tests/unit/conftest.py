"""The fast layer: pure code tested in-process, no stack. tests/conftest.py's fixtures start a
stack only when a test asks for one (none is autouse), and nothing here does; what this file
adds is that no test here reads the developer's environment (DATABASE_URL is set in the very
command that runs the suite)."""

from __future__ import annotations

import os

import pytest

from lectern_chat.settings import ChatSettings
from lectern_common.settings import ServiceSettings
from lectern_profile.settings import ProfileSettings
from lectern_retrieval.settings import RetrievalSettings
from lectern_summary.settings import SummarySettings

SETTINGS_CLASSES: tuple[type[ServiceSettings], ...] = (
    ChatSettings,
    RetrievalSettings,
    ProfileSettings,
    SummarySettings,
)


def setting_names() -> set[str]:
    """Every environment variable some service's settings read."""
    names: set[str] = set()
    for cls in SETTINGS_CLASSES:
        prefix = cls.model_config.get("env_prefix", "")
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            names.add((alias if isinstance(alias, str) else prefix + name).upper())
    return names


@pytest.fixture(autouse=True)
def no_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    names = setting_names()
    for key in list(os.environ):
        if key.upper() in names:
            monkeypatch.delenv(key)
