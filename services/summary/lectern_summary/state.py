"""The summary service's per-process state, opened by the lifespan and handed to routes."""

from __future__ import annotations

from dataclasses import dataclass

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

    def checks(self) -> dict[str, Check]:
        return dependency_checks(
            pool=self.pool, redis=self.redis, clients=(self.retrieval, self.profile)
        )
