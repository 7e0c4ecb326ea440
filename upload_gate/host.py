"""What a host knows about itself for its status reports: a boot id per process, report
sequences per boot id, and the CPU use of all its cores. Standard library only."""

from __future__ import annotations

import itertools
import os
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

_process_lock = threading.Lock()
_process_boot: tuple[int, str] | None = None
_sequences: dict[str, Any] = {}


def process_boot_id() -> str:
    """One id per process (a forked child gets its own): `<UTC start>-<pid>-<random>`."""
    global _process_boot
    with _process_lock:
        if _process_boot is None or _process_boot[0] != os.getpid():
            started = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            _process_boot = (os.getpid(), f"{started}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        return _process_boot[1]


def next_sequence(boot_id: str) -> int:
    """Sequences are per boot id, not per reporter: a second reporter never repeats one."""
    with _process_lock:
        counter = _sequences.setdefault(boot_id, itertools.count(0))
        return next(counter)


class ProcStatCpu:
    """CPU use of all cores since the previous call, in percent, from /proc/stat deltas.

    Where /proc/stat is missing (not Linux), the 1-minute load average divided by the core
    count, capped at 100, stands in.
    """

    def __init__(self, path: str = "/proc/stat") -> None:
        self.path = path
        self._last = self._read()

    def _read(self) -> tuple[int, int] | None:
        try:
            with open(self.path, encoding="ascii") as stat:
                fields = [int(value) for value in stat.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        # user nice system idle iowait irq softirq steal (guest time is inside user already)
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle

    def __call__(self) -> float:
        current = self._read()
        if current is None or self._last is None:
            self._last = current
            try:
                return min(100.0, 100.0 * os.getloadavg()[0] / (os.cpu_count() or 1))
            except OSError:
                return 0.0
        total, idle = current[0] - self._last[0], current[1] - self._last[1]
        self._last = current
        return 0.0 if total <= 0 else max(0.0, min(100.0, 100.0 * (total - idle) / total))
