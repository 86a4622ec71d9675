"""Settings: production mode refuses what would be unsafe or broken, and the model client's
tuning has one unprefixed name in every service."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

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
STRONG = "s" * 40
PRODUCTION = {
    "LECTERN_ENV": "production",
    "DATABASE_URL": "postgresql://db/lectern",
    "REDIS_URL": "redis://redis:6379/0",
    "INTERNAL_TOKEN": STRONG,
    "ADMIN_TOKEN": STRONG,
    "BETTER_AUTH_SECRET": STRONG,
}


def set_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)


@pytest.mark.parametrize("cls", SETTINGS_CLASSES, ids=lambda c: c.__name__)
def test_production_starts_with_strong_secrets_and_store_urls(
    monkeypatch: pytest.MonkeyPatch, cls: type[ServiceSettings]
) -> None:
    set_env(monkeypatch, PRODUCTION)
    assert cls().production


@pytest.mark.parametrize("cls", SETTINGS_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "change, message",
    [
        ({"DATABASE_URL": ""}, "DATABASE_URL"),
        ({"INTERNAL_TOKEN": ""}, "INTERNAL_TOKEN"),
        ({"INTERNAL_TOKEN": "changeme"}, "INTERNAL_TOKEN"),
        ({"INTERNAL_TOKEN": "short-but-not-a-word"}, "INTERNAL_TOKEN"),
        ({"INTERNAL_TOKEN": "  PASSWORD  "}, "INTERNAL_TOKEN"),
    ],
)
def test_production_refuses_missing_database_or_weak_internal_token(
    monkeypatch: pytest.MonkeyPatch,
    cls: type[ServiceSettings],
    change: dict[str, str],
    message: str,
) -> None:
    set_env(monkeypatch, {**PRODUCTION, **change})
    with pytest.raises(ValidationError, match=message):
        cls()


@pytest.mark.parametrize(
    "cls, secret",
    [(RetrievalSettings, "ADMIN_TOKEN"), (ProfileSettings, "BETTER_AUTH_SECRET")],
    ids=["retrieval", "profile"],
)
@pytest.mark.parametrize("weak", ["", "secret", "x" * 31])
def test_production_refuses_a_weak_service_secret(
    monkeypatch: pytest.MonkeyPatch, cls: type[ServiceSettings], secret: str, weak: str
) -> None:
    set_env(monkeypatch, {**PRODUCTION, secret: weak})
    with pytest.raises(ValidationError, match=secret):
        cls()


def test_local_mode_needs_no_secrets_or_store_urls() -> None:
    for cls in SETTINGS_CLASSES:
        settings = cls()
        assert not settings.production
        assert settings.database_url is None


def test_gemini_embeddings_without_an_api_key_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EMBEDDINGS_PROVIDER", "gemini")
    with pytest.raises(ValidationError, match="GEMINI_API_KEY"):
        RetrievalSettings()


@pytest.mark.parametrize("cls", SETTINGS_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "name, value, attribute, expected",
    [
        ("GEMINI_FIRST_TOKEN_TIMEOUT_S", "3", "first_token_timeout_s", 3.0),
        ("GEMINI_BETWEEN_TOKENS_TIMEOUT_S", "2.5", "between_tokens_timeout_s", 2.5),
        ("GEMINI_REQUEST_TIMEOUT_S", "7", "request_timeout_s", 7.0),
        ("GEMINI_MAX_ATTEMPTS", "5", "max_attempts", 5),
        ("GEMINI_BACKOFF_BASE_S", "0.05", "backoff_base_s", 0.05),
        ("GEMINI_MODEL", "gemini-2.5-pro", "model", "gemini-2.5-pro"),
        ("GEMINI_BASE_URL", "http://127.0.0.1:9", "base_url", "http://127.0.0.1:9"),
    ],
)
def test_every_service_reads_the_same_gemini_names(
    monkeypatch: pytest.MonkeyPatch,
    cls: type[ServiceSettings],
    name: str,
    value: str,
    attribute: str,
    expected: object,
) -> None:
    monkeypatch.setenv(name, value)
    assert getattr(cls().gemini_config(), attribute) == expected


@pytest.mark.parametrize(
    "old_name",
    [
        "CHAT_FIRST_TOKEN_TIMEOUT_S",
        "CHAT_GEMINI_FIRST_TOKEN_TIMEOUT_S",
        "SUMMARY_GEMINI_FIRST_TOKEN_TIMEOUT_S",
        "RETRIEVAL_GEMINI_FIRST_TOKEN_TIMEOUT_S",
    ],
)
def test_a_prefixed_gemini_name_is_not_read(monkeypatch: pytest.MonkeyPatch, old_name: str) -> None:
    monkeypatch.setenv(old_name, "1")
    assert all(cls().gemini_config().first_token_timeout_s != 1.0 for cls in SETTINGS_CLASSES)


@pytest.mark.parametrize(
    "cls, first_token_s, between_tokens_s, request_s",
    [
        (ChatSettings, 20.0, 20.0, 120.0),
        (SummarySettings, 30.0, 30.0, 120.0),
        (RetrievalSettings, 20.0, 20.0, 60.0),
        (ProfileSettings, 20.0, 20.0, 120.0),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_a_service_keeps_its_own_gemini_defaults(
    cls: type[ServiceSettings], first_token_s: float, between_tokens_s: float, request_s: float
) -> None:
    config = cls().gemini_config()
    assert (config.first_token_timeout_s, config.between_tokens_timeout_s) == (
        first_token_s,
        between_tokens_s,
    )
    assert config.request_timeout_s == request_s


@pytest.mark.parametrize(
    "name, value",
    [
        ("GEMINI_FIRST_TOKEN_TIMEOUT_S", "0"),
        ("GEMINI_REQUEST_TIMEOUT_S", "-1"),
        ("GEMINI_MAX_ATTEMPTS", "0"),
        ("GEMINI_BACKOFF_BASE_S", "-0.5"),
    ],
)
def test_an_impossible_gemini_setting_is_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name):
        ChatSettings()


def test_chat_answers_are_capped_by_its_own_output_ceiling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHAT_MAX_OUTPUT_TOKENS", "512")
    settings = ChatSettings()
    assert (
        settings.gemini_config(max_output_tokens=settings.max_output_tokens).max_output_tokens
        == 512
    )


def test_the_api_key_reaches_the_client_but_not_the_settings_repr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-very-secret")
    settings = SummarySettings()
    assert settings.gemini_enabled
    assert settings.gemini_config().api_key == "AIza-very-secret"
    assert "AIza-very-secret" not in repr(settings)


@pytest.mark.parametrize("cls", [ChatSettings, SummarySettings], ids=["chat", "summary"])
def test_callers_of_retrieval_and_profile_read_the_shared_urls(
    monkeypatch: pytest.MonkeyPatch, cls: type[ChatSettings] | type[SummarySettings]
) -> None:
    monkeypatch.setenv("RETRIEVAL_URL", "http://retrieval:8102")
    monkeypatch.setenv("PROFILE_URL", "http://profile:8103")
    settings = cls()
    assert (settings.retrieval_url, settings.profile_url) == (
        "http://retrieval:8102",
        "http://profile:8103",
    )


NEON_POOLED = "postgresql://u:p@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/db"
NEON_DIRECT = "postgresql://u:p@ep-cool-darkness-123456.us-east-2.aws.neon.tech/db"


@pytest.mark.parametrize(
    ("url", "flag", "pooled"),
    [
        (NEON_POOLED, None, True),
        (NEON_DIRECT, None, False),
        ("postgresql://postgres@127.0.0.1:6432/lectern", None, False),
        ("postgresql://postgres@127.0.0.1:6432/lectern", "true", True),
        (NEON_POOLED, "false", False),
        ("postgresql://u:@/db?host=/tmp/pg", None, False),
    ],
)
def test_a_pooled_database_url_is_a_neon_pooler_host_unless_database_pooled_says(
    monkeypatch: pytest.MonkeyPatch, url: str, flag: str | None, pooled: bool
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    if flag is None:
        monkeypatch.delenv("DATABASE_POOLED", raising=False)
    else:
        monkeypatch.setenv("DATABASE_POOLED", flag)
    assert ChatSettings().database_is_pooled is pooled
