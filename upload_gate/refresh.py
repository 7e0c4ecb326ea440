"""Keeps the in-memory copy of `upload_limits` current, and fails static when it cannot.

Two background threads:
- the poller asks `SELECT max(version)` every `poll_interval_seconds` (or sooner when
  woken) and reads the whole table only when the version moved;
- on PostgreSQL, a listener holds its own autocommit connection with `LISTEN
  upload_limits` and wakes the poller on every notification, so a change is applied in
  well under a second. Polling stays on as the safety net for missed notifications.

When the database is unreachable the last good copy stays in force; `stale_since_us`
says since when, and retries back off exponentially up to `max_backoff_seconds`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from .sources import SourceUnavailable, TableSource
from .table import TableSnapshot

log = logging.getLogger("upload_gate")


class TableRefresher:
    def __init__(
        self,
        source: TableSource,
        apply: Callable[[TableSnapshot], None],
        *,
        wall_ns: Callable[[], int],
        poll_interval_seconds: float = 1.0,
        min_backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 30.0,
        listen_timeout_seconds: float = 0.25,
    ) -> None:
        self._source = source
        self._apply = apply
        self._wall_ns = wall_ns
        self.poll_interval_seconds = poll_interval_seconds
        self.min_backoff_seconds = min_backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.listen_timeout_seconds = listen_timeout_seconds
        self._refresh_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._backoff_seconds = min_backoff_seconds
        self._retry_wait_seconds = min_backoff_seconds
        self.version: int | None = None
        self.loaded = False
        self.stale_since_us: int | None = None
        self.last_error: str | None = None
        self.listening = False
        self.stats = {"polls": 0, "reloads": 0, "reloads_after_wake": 0, "failures": 0, "notifications": 0}

    # -- one refresh -------------------------------------------------------------
    def refresh_now(self, *, woken: bool = False) -> bool:
        """Check the version and reload if it moved. True on success (even if unchanged)."""
        with self._refresh_lock:
            try:
                self._refresh_if_changed(woken)
            except SourceUnavailable as exc:
                self._record_failure(exc)
                return False
            except Exception as exc:  # a bad row or a bug: still fail static, but loudly
                log.exception("reading upload_limits failed")
                self._record_failure(exc)
                return False
            self._record_success()
            return True

    def _refresh_if_changed(self, woken: bool) -> None:
        self.stats["polls"] += 1
        latest = self._source.max_version() or 0  # NULL on an empty table
        if self.loaded and latest == self.version:
            return
        snapshot = self._source.read_snapshot()
        self._apply(snapshot)
        self.version = snapshot.version
        self.loaded = True
        self.stats["reloads"] += 1
        if woken:
            self.stats["reloads_after_wake"] += 1

    def _record_failure(self, exc: BaseException) -> None:
        self.stats["failures"] += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.stale_since_us is None:
            self.stale_since_us = self._wall_ns() // 1000
            log.warning("upload_limits unreachable, keeping the last good copy: %s", self.last_error)
        # Exponential backoff, capped: 0.5 s, 1 s, 2 s ... max_backoff_seconds.
        self._retry_wait_seconds = min(self._backoff_seconds, self.max_backoff_seconds)
        self._backoff_seconds = min(self.max_backoff_seconds, self._backoff_seconds * 2)

    def _record_success(self) -> None:
        if self.stale_since_us is not None:
            log.warning("upload_limits reachable again (version %s)", self.version)
        self.stale_since_us = None
        self.last_error = None
        self._backoff_seconds = self.min_backoff_seconds

    def next_wait_seconds(self) -> float:
        """The poll interval while healthy; the current retry backoff while failing."""
        if self.stale_since_us is None:
            return self.poll_interval_seconds
        return self._retry_wait_seconds

    # -- background threads ----------------------------------------------------------
    def start(self) -> None:
        if self._threads:
            return
        self._spawn(self._poll_loop, "upload-gate-poll")
        if getattr(self._source, "supports_notify", False):
            self._spawn(self._listen_loop, "upload-gate-listen")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self, timeout_seconds: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout_seconds)
        self._threads.clear()
        with self._refresh_lock:
            self._source.close()

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            woken = self._wake.wait(self.next_wait_seconds())
            if self._stop.is_set():
                return
            # Clear before reading, so a notification that lands mid-read wakes us again.
            self._wake.clear()
            self.refresh_now(woken=woken)

    def _listen_loop(self) -> None:
        backoff_seconds = self.min_backoff_seconds
        while not self._stop.is_set():
            try:
                listener: Any = self._source.open_listener()
            except SourceUnavailable:
                self._stop.wait(backoff_seconds)
                backoff_seconds = min(self.max_backoff_seconds, backoff_seconds * 2)
                continue
            backoff_seconds = self.min_backoff_seconds
            self._listen_until_broken(listener)

    def _listen_until_broken(self, listener: Any) -> None:
        self.listening = True
        # Notifications sent while we were disconnected are lost: re-check the version now.
        self._wake.set()
        try:
            while not self._stop.is_set():
                if listener.wait(self.listen_timeout_seconds):
                    self.stats["notifications"] += 1
                    self._wake.set()
        except SourceUnavailable as exc:
            log.info("LISTEN upload_limits lost (%s); reconnecting", exc)
        finally:
            self.listening = False
            listener.close()
