"""Fixtures of the identity tests: fresh signed-in readers and a reader for the profile log."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from lectern_dev.harness.readers import Reader, new_reader
from lectern_dev.stack import Stack


@pytest.fixture
def reader(gateway: httpx.Client) -> Reader:
    return new_reader(gateway, name="Reader A")


@pytest.fixture
def other_reader(gateway: httpx.Client) -> Reader:
    return new_reader(gateway, name="Reader B")


def rejection_reasons(log_file: Path) -> list[str]:
    """The reasons the profile service logged for the credentials it rejected, in order."""
    reasons = []
    for line in log_file.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"auth.rejected"' in line:
            reasons.append(json.loads(line)["reason"])
    return reasons


@pytest.fixture
def last_rejection(stack: Stack) -> Callable[[], str]:
    return lambda: rejection_reasons(stack.logs / "profile.log")[-1]


@pytest.fixture
def strict_last_rejection(strict_stack: Stack) -> Callable[[], str]:
    return lambda: rejection_reasons(strict_stack.logs / "profile.log")[-1]


@pytest.fixture(scope="session")
def strict_stack(make_stack: Callable[..., Stack]) -> Stack:
    """Better Auth issuing 2-second JWTs and a profile service that tolerates no clock skew and
    expects another audience, so the real server's own tokens can show both checks. It runs
    no chat service, which shows what deleting a profile does while chat is down."""
    return make_stack(
        "identity-strict",
        services=("profile",),
        extra_env={
            "AUTH_JWT_TTL_S": "2",
            "PROFILE_JWT_LEEWAY_S": "0",
            "PROFILE_JWT_AUDIENCE": "https://another-audience.example",
        },
    )
