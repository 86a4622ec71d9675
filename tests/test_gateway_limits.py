"""The gateway's rate limits: per reader when signed in, per address for guests and for
/api/auth (tighter on sign-up/sign-in), answered with 429 and Retry-After, and kept in Redis so
that every gateway replica draws on the same budget."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from lectern_dev.harness.gateways import start_gateway
from lectern_dev.harness.readers import new_reader
from lectern_dev.stack import Stack

# Budgets small enough to spend in a test: 5 API calls at once, 8 auth calls.
LIMITS = {
    "RATE_API_PER_S": "1",
    "RATE_API_BURST": "5",
    "RATE_AUTH_PER_MIN": "30",
    "RATE_AUTH_BURST": "8",
    "RATE_SIGN_PER_MIN": "6",
    "RATE_SIGN_BURST": "3",
    # The guests' buckets are keyed by address alone: other stacks' guests (127.0.0.1 too) must
    # not spend these budgets, so this stack's gateways keep theirs in a database of their own.
    "GATEWAY_REDIS_DB": "7",
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


def test_a_second_gateway_does_not_grant_a_fresh_budget(limited: Stack):
    """Two Traefik processes on one Redis: a reader who spent the budget on the first is
    refused by the second, while another reader is not."""
    second = start_gateway(limited, "gateway-2")
    try:
        with (
            httpx.Client(base_url=limited.gateway_url, timeout=10) as one,
            httpx.Client(base_url=second.url, timeout=10) as two,
        ):
            a, b = new_reader(one), new_reader(one)
            spent = statuses(one, "/api/profile/options", 12, headers=a.headers)
            assert any(r.status_code == 429 for r in spent)
            after = statuses(two, "/api/profile/options", 3, headers=a.headers)
            assert [r.status_code for r in after] == [429] * 3
            assert int(after[0].headers["retry-after"]) >= 0
            assert two.get("/api/profile/options", headers=b.headers).status_code == 200
    finally:
        second.stop()


def test_sign_in_is_limited_tighter_than_the_rest_of_auth(limited: Stack):
    with httpx.Client(base_url=limited.gateway_url, timeout=10) as gateway:
        body = {"email": "nobody@example.com", "password": "wrong-password-1"}
        headers = {"origin": limited.gateway_url}
        codes = [
            gateway.post("/api/auth/sign-in/email", json=body, headers=headers).status_code
            for _ in range(6)
        ]
        assert 429 in codes and codes.index(429) <= 4, codes
        # The rest of /api/auth keeps its own, larger budget.
        assert gateway.get("/api/auth/ok").status_code == 200
