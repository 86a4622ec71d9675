"""The profile service's typed state, opened by the lifespan and handed to routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from lectern_common.http import InternalClient
from lectern_profile.settings import ProfileSettings
from lectern_profile.verification import Verifier


@dataclass
class ProfileState:
    settings: ProfileSettings
    pool: asyncpg.Pool
    chat: InternalClient
    verifier: Verifier


async def profile_state(request: Request) -> ProfileState:
    return request.state.profile


State = Annotated[ProfileState, Depends(profile_state)]
