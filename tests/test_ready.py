"""Each service opens, checks and requires exactly what it uses: its `/ready` on the real stack
lists those dependencies and nothing else, and production settings ask for REDIS_URL only of
the services that use Redis."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from lectern_dev.stack import Stack
from lectern_profile.settings import ProfileSettings
from lectern_retrieval.settings import RetrievalSettings
from lectern_summary.settings import SummarySettings

# Stores first, then the services called on the hot path.
DEPENDENCIES = {
    "chat": {"postgres", "redis", "retrieval", "profile"},
    "retrieval": {"postgres", "qdrant"},
    "profile": {"postgres"},
    "summary": {"postgres", "redis", "retrieval", "profile"},
}


@pytest.mark.parametrize("service", sorted(DEPENDENCIES))
def test_ready_lists_exactly_what_the_service_uses(stack: Stack, service: str):
    response = httpx.get(f"{stack.config.url(service)}/ready", timeout=10.0)
    assert response.status_code == 200, response.text
    deps = response.json()["dependencies"]
    assert set(deps) == DEPENDENCIES[service]
    assert all(dep["ok"] for dep in deps.values()), deps


STRONG = "s" * 40
PRODUCTION = {
    "env": "production",
    "database_url": "postgresql://lectern@db.internal:5432/lectern",
    "internal_token": STRONG,
    "gemini_api_key": "",
}


@pytest.fixture
def no_redis_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test run's own REDIS_URL must not satisfy the settings under test."""
    monkeypatch.delenv("REDIS_URL", raising=False)


@pytest.mark.usefixtures("no_redis_env")
@pytest.mark.parametrize(
    ("settings_class", "own"),
    [
        (RetrievalSettings, {"admin_token": STRONG, "embeddings_provider": "local"}),
        (ProfileSettings, {"better_auth_secret": STRONG}),
    ],
    ids=["retrieval", "profile"],
)
def test_services_without_redis_start_in_production_without_redis_url(
    settings_class: type[BaseSettings], own: dict
):
    settings = settings_class(**PRODUCTION, **own)
    assert settings.redis_url is None
    assert not settings.uses_redis


@pytest.mark.usefixtures("no_redis_env")
def test_summary_needs_redis_url_in_production():
    with pytest.raises(ValidationError, match="REDIS_URL"):
        SummarySettings(**PRODUCTION)
    assert SummarySettings(**PRODUCTION, redis_url="redis://cache.internal:6379/0").uses_redis
