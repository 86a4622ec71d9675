"""The profile service's typed state, opened by the lifespan and handed to routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from lectern_common.health import Check
from lectern_common.http import InternalClient
from lectern_common.stores import dependency_checks
from lectern_profile.settings import ProfileSettings
from lectern_profile.verification import Verifier


@dataclass
class ProfileState:
    settings: ProfileSettings
    pool: asyncpg.Pool
    chat: InternalClient
    verifier: Verifier

    def checks(self) -> dict[str, Check]:
        # Only Postgres: forwardAuth reads sessions there on every request. The JWKS is fetched
        # once and cached, and chat is called only when a reader deletes their profile.
        return dependency_checks(pool=self.pool)


async def profile_state(request: Request) -> ProfileState:
    return request.state.profile


State = Annotated[ProfileState, Depends(profile_state)]
