"""The summary service's per-process state, opened by the lifespan and handed to routes."""

from __future__ import annotations

from dataclasses import dataclass

from lectern_common.http import InternalClient
from lectern_common.stores import Stores
from lectern_summary.generation import Generator
from lectern_summary.settings import SummarySettings


@dataclass
class SummaryState:
    settings: SummarySettings
    stores: Stores
    retrieval: InternalClient
    profile: InternalClient
    generator: Generator
