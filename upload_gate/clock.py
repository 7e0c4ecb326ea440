"""Clocks the gate reads: a monotonic one for rates and leases, a wall one for UTC days.

Both return integer nanoseconds so arithmetic stays exact (the gate works in whole
microseconds). Tests and the test vectors inject a ManualClock to be deterministic.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

UTC = UTC
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SystemClock:
    """The real clocks. Plain functions as attributes, so the hot path calls C directly."""

    monotonic_ns = staticmethod(time.monotonic_ns)
    wall_ns = staticmethod(time.time_ns)


class ManualClock:
    """A clock that only moves when told to: monotonic and wall advance together."""

    def __init__(self, wall: datetime | None = None, monotonic_ns: int = 1_000_000_000_000) -> None:
        start = wall or datetime(2025, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._lock = threading.Lock()
        self._monotonic_ns = monotonic_ns
        self._wall_ns = datetime_to_epoch_us(start) * 1000

    def monotonic_ns(self) -> int:
        return self._monotonic_ns

    def wall_ns(self) -> int:
        return self._wall_ns

    def advance(self, seconds: float = 0.0, *, microseconds: int = 0) -> None:
        step_ns = round(seconds * 1_000_000) * 1000 + microseconds * 1000
        if step_ns < 0:
            raise ValueError("a monotonic clock never goes back")
        with self._lock:
            self._monotonic_ns += step_ns
            self._wall_ns += step_ns

    def set_wall(self, wall: datetime) -> None:
        """Jump the wall clock only (NTP step); the monotonic clock is unaffected."""
        with self._lock:
            self._wall_ns = datetime_to_epoch_us(wall) * 1000

    def now(self) -> datetime:
        return epoch_us_to_datetime(self._wall_ns // 1000)


def datetime_to_epoch_us(value: datetime) -> int:
    """Exact microseconds since the Unix epoch (no float rounding)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def epoch_us_to_datetime(epoch_us: int) -> datetime:
    return EPOCH + timedelta(microseconds=epoch_us)
