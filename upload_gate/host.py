"""What a host knows about itself for its status reports: who it is (for enrolment), a boot id
per process, report sequences per boot id, and the CPU use of all its cores. Standard library only."""

from __future__ import annotations

import itertools
import os
import re
import socket
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

HOST_ID_ENV = "UPLOAD_GATE_HOST_ID"
INSTANCE_ID_ENV = "UPLOAD_GATE_INSTANCE_ID"
# cloud-init writes the EC2 instance id here at boot: no metadata request needed.
CLOUD_INIT_INSTANCE_ID = "/var/lib/cloud/data/instance-id"
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,254}")

_process_lock = threading.Lock()
_process_boot: tuple[int, str] | None = None
_sequences: dict[str, Any] = {}


def instance_id(path: str | None = None) -> str:
    """The cloud instance id ($UPLOAD_GATE_INSTANCE_ID, else cloud-init's record), or ""."""
    value = os.environ.get(INSTANCE_ID_ENV, "").strip()
    if not value:
        try:
            with open(path or CLOUD_INIT_INSTANCE_ID, encoding="ascii") as recorded:
                value = recorded.read().strip()
        except (OSError, ValueError):
            value = ""
    return value if _ID_RE.fullmatch(value) else ""


def host_id() -> str:
    """Who this host is when it enrols: $UPLOAD_GATE_HOST_ID, else its instance id, else its host
    name. The same on every start and in every process of the host, so the host counts once."""
    value = os.environ.get(HOST_ID_ENV, "").strip() or instance_id() or socket.gethostname()
    if not _ID_RE.fullmatch(value):
        raise ValueError(f"host id {value!r} is not letters, digits and . _ : - (set ${HOST_ID_ENV})")
    return value


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
