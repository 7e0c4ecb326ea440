"""The decisions that reject an upload: the status, the reason and a jittered Retry-After.

Shared by the gate's local decisions and fleet-wide (Redis) mode, so a client sees the same
answer for the same limit whichever way it was counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .decision import Decision
from .limits import US_PER_SECOND
from .rules import REASONS, REDUCED_REASONS, reduced_capacity_problem

STATUS_THROTTLED = 429
STATUS_PAUSED = 503


class Rejections:
    def __init__(self, jitter_fraction: float, random: Callable[[], float]) -> None:
        if not 0.0 <= jitter_fraction <= 1.0:
            raise ValueError("jitter_fraction must be within 0..1")
        self._jitter_fraction = jitter_fraction
        self._random = random

    def jittered(self, base_seconds: int) -> int:
        """base + floor(base * jitter * u), u in [0, 1): spreads retries by +0..jitter."""
        if not self._jitter_fraction:
            return base_seconds
        return base_seconds + int(base_seconds * self._jitter_fraction * self._random())

    def paused(self, limit: str, reason: str, base_seconds: int) -> Decision:
        return Decision(False, STATUS_PAUSED, reason, self.jittered(base_seconds), limit, None, None)

    def throttled(self, limit: str, wait_us: int, view: Any, reduced: frozenset = frozenset()) -> Decision:
        if limit in reduced and limit in REDUCED_REASONS:
            return self.reduced_capacity(limit, wait_us, view)
        base = max(1, -(-wait_us // US_PER_SECOND))
        return Decision(False, STATUS_THROTTLED, REASONS[limit], self.jittered(base), limit, None, view)

    def reduced_capacity(self, limit: str, wait_us: int, view: Any) -> Decision:
        """Over a limit the dashboard lowered because the fleet is loaded: 503, and the
        headers carry the lowered quota (the configured one is not what holds now)."""
        base = max(1, -(-wait_us // US_PER_SECOND))
        problem = reduced_capacity_problem(limit)
        return Decision(False, STATUS_PAUSED, REDUCED_REASONS[limit], self.jittered(base), limit, None, view, problem)
