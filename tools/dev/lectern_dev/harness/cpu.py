"""CPU time per process group, from /proc (Linux): how much each part of the stack spends per
request or per answer. Unlike wall time, this hardly depends on what else the machine does."""

from __future__ import annotations

import os
from pathlib import Path

TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def _processes() -> list[tuple[int, int, int, str, float]]:
    """(pid, parent pid, process group, command name, user+system CPU ms) of every process."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) * TICK_MS
        out.append((int(entry.name), int(fields[1]), int(fields[2]), comm, cpu))
    return out


class CpuProbe:
    """Cumulative CPU ms of named process groups (a stack's services: each runs in its own
    group, workers included), of PostgreSQL and Redis servers, and of this process. With
    `postmaster`, only that PostgreSQL server's processes count, and only the Redis of the
    group named redis (the machine may run others)."""

    def __init__(self, groups: dict[str, int], *, postmaster: int | None = None) -> None:
        self.groups = groups
        self.postmaster = postmaster

    def snapshot(self) -> dict[str, float]:
        totals = dict.fromkeys([*self.groups, "postgres", "redis", "load generator"], 0.0)
        by_group = {pgid: name for name, pgid in self.groups.items()}
        for pid, ppid, pgrp, comm, cpu in _processes():
            if pid == os.getpid():
                totals["load generator"] += cpu
            elif comm == "postgres":
                if self.postmaster is None or self.postmaster in (pid, ppid):
                    totals["postgres"] += cpu
            elif comm.startswith("redis-server"):
                # The stack's own Redis (a group named redis), or any when none is named.
                if self.postmaster is None or by_group.get(pgrp) == "redis":
                    totals["redis"] += cpu
            elif pgrp in by_group:
                totals[by_group[pgrp]] += cpu
        return totals

    @staticmethod
    def per_unit(before: dict[str, float], after: dict[str, float], units: int) -> dict[str, float]:
        """CPU ms per unit (request, answer) of each part between two snapshots."""
        out = {name: round((after[name] - before[name]) / max(units, 1), 3) for name in after}
        out["total"] = round(sum(out.values()), 2)
        return out
