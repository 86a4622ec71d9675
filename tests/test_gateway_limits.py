"""The gateway's rate limits: per reader when signed in, per address for guests and for
/api/auth, answered with 429 and Retry-After."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from lectern_dev.harness.readers import new_reader
from lectern_dev.stack import Stack

# Budgets small enough to spend in a test: 5 API calls at once, 8 auth calls.
LIMITS = {
    "RATE_API_PER_S": "1",
    "RATE_API_BURST": "5",
    "RATE_AUTH_PER_MIN": "30",
    "RATE_AUTH_BURST": "8",
}


@pytest.fixture(scope="module")
def limited(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack("limits", services=("profile",), extra_env=LIMITS)


def statuses(client: httpx.Client, path: str, n: int, **kwargs) -> list[httpx.Response]:
    return [client.get(path, **kwargs) for _ in range(n)]


def test_readers_have_their_own_budget_and_guests_share_their_address(limited: Stack):
    with httpx.Client(base_url=limited.gateway_url, timeout=10) as gateway:
        a, b = new_reader(gateway), new_reader(gateway)
        burst = statuses(gateway, "/api/profile/options", 12)
        refused = [r for r in burst if r.status_code == 429]
        assert refused and int(refused[0].headers["retry-after"]) >= 0
        assert [r.status_code for r in burst[:5]] == [200] * 5

        a_burst = statuses(gateway, "/api/profile/options", 12, headers=a.headers)
        assert a_burst[0].status_code == 200  # the guests' spent budget is not a's
        assert any(r.status_code == 429 for r in a_burst)
        assert gateway.get("/api/profile/options", headers=b.headers).status_code == 200


def test_auth_routes_are_limited_per_address(limited: Stack):
    with httpx.Client(base_url=limited.gateway_url, timeout=10) as gateway:
        codes = [r.status_code for r in statuses(gateway, "/api/auth/ok", 15)]
    assert 429 in codes and codes[0] == 200
