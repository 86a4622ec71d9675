"""The summary service's per-process state, opened by the lifespan and handed to routes."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import asyncpg
from redis.asyncio import Redis

from lectern_common.health import Check
from lectern_common.http import InternalClient
from lectern_common.stores import dependency_checks
from lectern_common.tasks import BackgroundTasks
from lectern_summary.generation import Generator
from lectern_summary.settings import SummarySettings


@dataclass
class SummaryState:
    settings: SummarySettings
    pool: asyncpg.Pool
    # The single-flight lock's store (the generator's Flight holds it too).
    redis: Redis
    retrieval: InternalClient
    profile: InternalClient
    generator: Generator
    # Streamed generations, which outlive a reader who leaves.
    background: BackgroundTasks
    # SIGTERM: no new stream starts (`draining`); at the grace's end the open ones are told to
    # end (`stopping`).
    draining: bool = False
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def drain(self, deadline: float) -> None:
        """Let the running generations finish until `deadline` (their readers get them to
        `done`), then end every stream still open with a retryable `error` (shutting_down)
        instead of the server's shutdown cutting it without an event."""
        self.draining = True
        running = self.background.running("generate:")
        if running:
            await asyncio.wait(running, timeout=max(0.0, deadline - time.monotonic()))
        self.stopping.set()

    def checks(self) -> dict[str, Check]:
        return dependency_checks(
            pool=self.pool, redis=self.redis, clients=(self.retrieval, self.profile)
        )
