"""The audience segment: readers whose profiles fall in one segment share one personalized
chapter (the summary service caches by it), so it is coarse on purpose: overall experience
(from the four skill levels) x hardware access, e.g. `intermediate-jetson`."""

from __future__ import annotations

from collections.abc import Mapping

from lectern_common.contracts import LEVEL_FIELDS

LEVEL_SCORES = {"none": 0, "beginner": 1, "intermediate": 2, "advanced": 3}
# With nothing said, assume the least: explain more, and assume no hardware beyond a simulator.
DEFAULT_EXPERIENCE = "beginner"
DEFAULT_HARDWARE = "simulation_only"


def experience(profile: Mapping[str, object]) -> str:
    """beginner / intermediate / advanced from the mean of the levels the reader gave."""
    scores = [LEVEL_SCORES[v] for f in LEVEL_FIELDS if isinstance(v := profile.get(f), str)]
    if not scores:
        return DEFAULT_EXPERIENCE
    mean = sum(scores) / len(scores)
    if mean < 1.5:
        return "beginner"
    return "intermediate" if mean < 2.5 else "advanced"


def segment(profile: Mapping[str, object]) -> str:
    hardware = profile.get("hardware_access") or DEFAULT_HARDWARE
    return f"{experience(profile)}-{hardware}"
