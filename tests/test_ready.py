"""Each service opens, checks and requires exactly what it uses: its `/ready` on the real stack
lists those dependencies and nothing else, and production settings ask for REDIS_URL only of
the services that use Redis."""

from __future__ import annotations

import httpx
import pytest
import redis as redis_sync
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from lectern_common.stores import redis_client_name
from lectern_dev.harness.polling import wait_until
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


def test_only_the_services_that_use_redis_hold_connections_to_it(stack: Stack) -> None:
    """What a service does, not only what /ready lists: every Redis connection is named by its
    service, and the server's CLIENT LIST has none of a service that does not use Redis (a
    retrieval that pinged Redis at start-up fails this; checked)."""
    for service in sorted(DEPENDENCIES):  # traffic on each, so their clients are connected
        assert httpx.get(f"{stack.config.url(service)}/ready", timeout=10.0).status_code == 200
    assert stack.redis_url
    with redis_sync.Redis.from_url(stack.redis_url) as server:

        def names() -> set[str]:
            return {c.get("name", "") for c in server.client_list()}

        users = {s for s, deps in DEPENDENCIES.items() if "redis" in deps}
        wait_until(lambda: {redis_client_name(s) for s in users} <= names(), timeout_s=10.0)
        for service in set(DEPENDENCIES) - users:
            assert redis_client_name(service) not in names()


STRONG = "s" * 40
# Production mode, read from the environment as a deployment sets it (the run's own store URLs
# are removed first, so they cannot satisfy the settings under test).
PRODUCTION = {
    "LECTERN_ENV": "production",
    "DATABASE_URL": "postgresql://lectern@db.internal:5432/lectern",
    "INTERNAL_TOKEN": STRONG,
    "ADMIN_TOKEN": STRONG,
    "BETTER_AUTH_SECRET": STRONG,
    "EMBEDDINGS_PROVIDER": "local",
}


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("REDIS_URL", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@pytest.mark.parametrize("settings_class", [RetrievalSettings, ProfileSettings])
def test_services_without_redis_start_in_production_without_redis_url(
    production: pytest.MonkeyPatch, settings_class: type[BaseSettings]
) -> None:
    settings = settings_class()
    assert settings.production
    assert settings.redis_url is None


def test_summary_needs_redis_url_in_production(production: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="REDIS_URL"):
        SummarySettings()
    production.setenv("REDIS_URL", "redis://cache.internal:6379/0")
    assert SummarySettings().production
