"""Keeps the in-memory copy of `upload_limits` current, and fails static when it cannot.

Two background threads:
- the poller asks `SELECT max(version)` every `poll_interval_seconds` (or sooner when
  woken) and reads the whole table only when the version moved;
- on PostgreSQL, a listener holds its own autocommit connection with `LISTEN
  upload_limits` and wakes the poller on every notification, so a change is applied in
  well under a second. Polling stays on as the safety net for missed notifications.

When the database is unreachable the last good copy stays in force; `stale_since_us`
says since when (set at the first failed read, or as soon as the LISTEN connection is lost,
whichever comes first) and is cleared only by a good read. Retries back off exponentially,
but never wait longer than the poll interval, so a database that answers again is seen
within one poll interval.

A row that cannot be parsed is not a failure: it is skipped and named (a WARNING naming the
row and the column, and `bad_rows` for the status report) while the rest of the table applies.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from .sources import SourceUnavailable, TableSource
from .table import BadRow, TableSnapshot

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
        self.bad_rows: tuple[BadRow, ...] = ()
        self._snapshot: TableSnapshot | None = None
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
        snapshot = self._source.read_snapshot().keeping_last_good(self._snapshot)
        self._apply(snapshot)
        self._log_bad_rows(snapshot.bad_rows)
        self._snapshot = snapshot
        self.version = snapshot.version
        self.loaded = True
        self.stats["reloads"] += 1
        if woken:
            self.stats["reloads_after_wake"] += 1

    def _log_bad_rows(self, bad_rows: tuple[BadRow, ...]) -> None:
        """One WARNING per skipped row when the set changes (a reload with the same bad rows is quiet)."""
        named = [bad.as_dict() for bad in bad_rows]
        if named != [bad.as_dict() for bad in self.bad_rows]:
            for bad in bad_rows:
                log.warning(
                    "upload_limits row %r, column %s: %s (row skipped; the rest of the table applies)",
                    bad.client_id,
                    bad.column,
                    bad.problem,
                )
            if not bad_rows and self.bad_rows:
                log.warning("upload_limits has no bad rows any more (version %s)", self.version)
        self.bad_rows = bad_rows

    def _record_failure(self, exc: BaseException) -> None:
        self.stats["failures"] += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        self.mark_stale("upload_limits unreachable, keeping the last good copy: %s", self.last_error)
        # Exponential backoff: 0.5 s, 1 s, 2 s ... but never longer than the poll interval (or
        # max_backoff_seconds), so a database that answers again is read within one interval.
        cap_seconds = min(self.max_backoff_seconds, self.poll_interval_seconds)
        self._retry_wait_seconds = min(self._backoff_seconds, cap_seconds)
        self._backoff_seconds = min(cap_seconds, self._backoff_seconds * 2)

    def mark_stale(self, message: str, *args: object) -> None:
        """From now on the copy in force may be out of date (until a good read clears it)."""
        if self.stale_since_us is None:
            self.stale_since_us = self._wall_ns() // 1000
            log.warning(message, *args)

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
            except SourceUnavailable as exc:
                # Without LISTEN a change may go unseen for a whole poll interval: say so now.
                self._lost_listener(exc)
                self._stop.wait(backoff_seconds)
                backoff_seconds = min(self.max_backoff_seconds, backoff_seconds * 2)
                continue
            backoff_seconds = self.min_backoff_seconds
            self._listen_until_broken(listener)

    def _lost_listener(self, exc: BaseException) -> None:
        """The LISTEN connection is gone: stale at once, and the poller checks now (a good
        read clears it again if only that connection broke)."""
        self.last_error = f"{type(exc).__name__}: {exc}"
        self.mark_stale("LISTEN upload_limits lost, changes may go unseen: %s", self.last_error)
        self._wake.set()

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
            self._lost_listener(exc)
        finally:
            self.listening = False
            listener.close()
