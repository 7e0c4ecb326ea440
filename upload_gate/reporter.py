"""Sends the gate's counters to the dashboard as status reports (docs/status-report.md).

    reporter = StatusReporter(gate, "https://ops.internal", "upload-3", token)   # starts a thread
    ...
    reporter.stop()

Every `interval_seconds` a daemon thread takes `gate.snapshot_counters(reset=True)`, turns it
into a report with the next sequence number and queues it; then it POSTs the queue in order.
Uploads never wait for it: admit/release only touch the gate's own lock, which the snapshot
holds for a few dictionary operations; all network I/O happens on the reporter's thread.

When the dashboard is unreachable, times out or answers 5xx / 429 / 408, reports stay queued
(at most `max_queued_reports`, the oldest dropped first and counted) and are sent again in
order, with their original sequence numbers, after a backoff (1 s, 2 s, 4 s ... capped, or the
answer's Retry-After). Any other 4xx drops the report it answered (it would fail again) and is
logged. A report answered with 500 (the dashboard failed on that very report) is tried
`max_attempts_on_500` times, then dropped and logged, so one report the dashboard cannot take
never holds up the in-order queue for good; 502, 503 and 504 (the dashboard or its database is
away) are retried for as long as the queue keeps the report. A 202 "duplicate" counts as
delivered. Standard library only.

A host can enrol itself instead of being given a token: see reporter_enrolment.py.
"""

from __future__ import annotations

import collections
import http.client
import json
import logging
import random
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from .host import ProcStatCpu, next_sequence, process_boot_id
from .report_body import ReportBody
from .reporter_enrolment import HostEnrolment

log = logging.getLogger("upload_gate.reporter")

REPORT_PATH = "/api/v1/reports"
RETRY_STATUSES = frozenset({408, 425, 429})  # and every 5xx
INTERNAL_ERROR = 500  # the dashboard failed on this report: it may fail on it every time


class StatusReporter(ReportBody, HostEnrolment):
    """Reports one gate's figures to `<dashboard_url>/api/v1/reports`. Thread-safe."""

    def __init__(
        self,
        gate: Any,
        dashboard_url: str,
        server_id: str | None,
        token: str | None,
        *,
        interval_seconds: float = 5,
        cpu_percent: Callable[[], float] | None = None,
        boot_id: str | None = None,
        max_queued_reports: int = 720,
        timeout_seconds: float = 3,
        min_backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 60.0,
        max_attempts_on_500: int = 5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] | None = None,
        start: bool = True,
        enrolment_secret: str | None = None,
        token_file: str | None = None,
        host_id: str | None = None,
        instance_id: str | None = None,
        scaling_group: str = "",
    ) -> None:
        url = urllib.parse.urlsplit(dashboard_url.rstrip("/") + REPORT_PATH)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"dashboard_url must be http(s)://host[:port][/prefix], not {dashboard_url!r}")
        if max_queued_reports < 1 or interval_seconds <= 0 or max_attempts_on_500 < 1:
            raise ValueError("max_queued_reports and max_attempts_on_500 must be >= 1 and interval_seconds > 0")
        if not token and not enrolment_secret:
            raise ValueError("give the server's token, or the fleet enrolment_secret to enrol with")
        self.gate = gate
        self.dashboard_url = dashboard_url.rstrip("/")
        # Enrolling without a name: the dashboard names the server (after its host id).
        self.server_id = server_id or ("" if enrolment_secret and not token else gate.server_id)
        self.boot_id = boot_id or process_boot_id()
        self.interval_seconds = interval_seconds
        self.max_queued_reports = max_queued_reports
        self.timeout_seconds = timeout_seconds
        self.min_backoff_seconds = min_backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.max_attempts_on_500 = max_attempts_on_500
        self._500s_of_head: tuple[int, int] | None = None  # (sequence, 500s in a row)
        self._url = url
        self._token = token or None
        self._enrolment_secret = enrolment_secret
        self._token_file = token_file
        self._host_id = host_id
        self._instance_id = instance_id
        self._scaling_group = scaling_group
        self._stale_token: str | None = None
        self._cpu = cpu_percent or ProcStatCpu()
        self._clock = clock
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait  # the default wakes at once on stop()
        self._lock = threading.Lock()  # the queue and the counters
        self._cycle_lock = threading.Lock()  # one sender at a time: keeps the order
        self._queue: collections.deque[tuple[int, bytes]] = collections.deque()
        self._backoff_seconds = min_backoff_seconds
        self._retry_at = 0.0
        self._next_report_at = clock() + interval_seconds
        self._thread: threading.Thread | None = None
        self._last_logged_status: int | None = None
        self.sent = 0  # delivered: accepted, or duplicate of one already stored
        self.duplicates = 0
        self.dropped_overflow = 0  # the queue was full: the oldest report went
        self.rejected = 0  # a 4xx other than 408/425/429: that report went
        self.dropped_after_500s = 0  # answered 500 max_attempts_on_500 times: that report went
        self.failures = 0  # attempts that will be retried
        self.last_error: str | None = None
        self.last_status: int | None = None
        self.last_sequence: int | None = None  # the sequence of the latest delivered report
        self.sending = False  # a POST is in progress right now
        if start:
            self.start()

    # -- counters -------------------------------------------------------------------
    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def dropped(self) -> int:
        return self.dropped_overflow + self.rejected + self.dropped_after_500s

    def stats(self) -> dict:
        with self._lock:
            return {
                "sent": self.sent,
                "duplicates": self.duplicates,
                "queued": len(self._queue),
                "dropped": self.dropped,
                "dropped_overflow": self.dropped_overflow,
                "rejected": self.rejected,
                "dropped_after_500s": self.dropped_after_500s,
                "failures": self.failures,
                "last_error": self.last_error,
                "last_status": self.last_status,
                "last_sequence": self.last_sequence,
            }

    def collect(self) -> int:
        """Take the gate's counters (resetting them) and queue one report; returns its sequence."""
        sequence = next_sequence(self.boot_id)
        report = self.build_report(self.gate.snapshot_counters(reset=True), sequence)
        body = json.dumps(report, separators=(",", ":")).encode()
        with self._lock:
            self._queue.append((sequence, body))
            while len(self._queue) > self.max_queued_reports:
                self._queue.popleft()
                self.dropped_overflow += 1
        return sequence

    # -- sending ------------------------------------------------------------------------
    def send_now(self) -> int:
        """One synchronous cycle: queue a report, then send the queue (no backoff wait).

        Returns how many queued reports were delivered (accepted or duplicate).
        """
        with self._cycle_lock:
            self.collect()
            return self._flush(ignore_backoff=True)

    def _flush(self, ignore_backoff: bool = False, stop_at: float | None = None) -> int:
        """Send queued reports in order until the queue is empty or an attempt must be retried."""
        delivered = 0
        enrolled_again = False
        while self._queue:
            if not ignore_backoff and self._clock() < self._retry_at:
                break
            if stop_at is not None and self._clock() >= stop_at:
                break  # time for the next report: take it first, then carry on
            if self._token is None and not self._enrol():
                break
            sequence, body = self._queue[0]
            outcome, retry_after = self._post(sequence, body)
            if outcome == "enrol" and not enrolled_again:
                enrolled_again = True  # once per cycle: a token refused twice is a real problem
                self._stale_token, self._token = self._token, None
                continue
            with self._lock:
                if outcome == "error":
                    outcome = self._after_500(sequence)
                if outcome in ("retry", "enrol"):
                    self._back_off(retry_after)
                    break
                if self._queue and self._queue[0][0] == sequence:
                    self._queue.popleft()  # (unless the overflow dropped it meanwhile)
                self._backoff_seconds = self.min_backoff_seconds
                self._retry_at = 0.0
                if outcome == "rejected":
                    self.rejected += 1
                elif outcome == "dropped":
                    self.dropped_after_500s += 1
                else:
                    delivered += 1
                    self.sent += 1
                    self.duplicates += outcome == "duplicate"
                    self.last_sequence = sequence
                    self.last_error = None
        return delivered

    def _back_off(self, retry_after: float | None) -> None:
        self.failures += 1
        wait = max(self._backoff_seconds, retry_after or 0)
        wait = min(self.max_backoff_seconds, wait) * (1 + 0.2 * random.random())
        self._retry_at = self._clock() + wait
        self._backoff_seconds = min(self.max_backoff_seconds, self._backoff_seconds * 2)

    def _after_500(self, sequence: int) -> str:
        """ "retry", or "dropped" once the report at the head got its last 500 in a row."""
        previous = self._500s_of_head[1] if self._500s_of_head and self._500s_of_head[0] == sequence else 0
        self._500s_of_head = (sequence, previous + 1)
        if previous + 1 < self.max_attempts_on_500:
            return "retry"
        self._500s_of_head = None
        log.error(
            "status report %s dropped: the dashboard answered 500 to it %s times in a row", sequence, previous + 1
        )
        return "dropped"

    def _post(self, sequence: int, body: bytes) -> tuple[str, float | None]:
        """POST one report: ("accepted" | "duplicate" | "rejected" | "error" | "retry" | "enrol", Retry-After)."""
        url = self._url
        https = url.scheme == "https"
        connection_class = http.client.HTTPSConnection if https else http.client.HTTPConnection
        connection = connection_class(url.hostname, url.port, timeout=self.timeout_seconds)
        path = url.path + (f"?{url.query}" if url.query else "")
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Connection": "close",
        }
        self.sending = True
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            status, answer = response.status, response.read(64 * 1024)
            retry_after = response.getheader("Retry-After")
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, bad answer
            self._record_error(None, f"{type(exc).__name__}: {exc}", sequence, retry=True)
            return "retry", None
        finally:
            self.sending = False
            connection.close()
        if 200 <= status < 300:
            self.last_status = status
            try:
                kind = json.loads(answer).get("status")
            except (ValueError, AttributeError):
                kind = None
            self._last_logged_status = None
            return ("duplicate" if kind == "duplicate" else "accepted"), None
        text = answer[:500].decode("utf-8", "replace")
        if status == 401 and self._enrolment_secret:
            self._record_error(status, text, sequence, retry=True)
            return "enrol", None  # the token was replaced or the server marked gone: enrol again
        if status == INTERNAL_ERROR:
            self._record_error(status, text, sequence, retry=True)
            return "error", _seconds(retry_after)
        if status >= 500 or status in RETRY_STATUSES:
            self._record_error(status, text, sequence, retry=True)
            return "retry", _seconds(retry_after)
        self._record_error(status, text, sequence, retry=False)
        return "rejected", None

    def _record_error(self, status: int | None, text: str, sequence: int, retry: bool) -> None:
        self.last_status = status
        self.last_error = f"HTTP {status}: {text}" if status is not None else text
        # Log a change of trouble loudly, its repetitions quietly (every 5 s would flood logs).
        level = logging.WARNING if status != self._last_logged_status else logging.DEBUG
        self._last_logged_status = status
        if retry:
            log.log(level, "status report %s not delivered, will retry: %s", sequence, self.last_error)
        else:
            log.log(
                logging.ERROR if level == logging.WARNING else logging.DEBUG,
                "status report %s refused by the dashboard and dropped: %s",
                sequence,
                self.last_error,
            )

    # -- the background thread ----------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="upload-gate-reporter", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._run_once()
            except Exception:  # a bug must not end reporting for good
                log.exception("status reporter cycle failed")
                self._sleep(self.interval_seconds)

    def _run_once(self) -> None:
        now = self._clock()
        with self._cycle_lock:
            if now >= self._next_report_at:
                self.collect()
                self._next_report_at += self.interval_seconds
                if self._next_report_at <= now:  # fell behind (suspended): no burst of catch-up reports
                    self._next_report_at = now + self.interval_seconds
            if self._queue and now >= self._retry_at:
                self._flush(stop_at=self._next_report_at)
        now = self._clock()
        wait = self._next_report_at - now
        if self._queue:
            wait = min(wait, self._retry_at - now)
        if wait > 0:
            self._sleep(wait)

    def stop(
        self,
        final_report: bool = True,
        timeout_seconds: float | None = None,
        deregister: bool = False,
        deregister_reason: str = "",
    ) -> None:
        """Stop the thread; with final_report, queue the last figures and try each queued report once.

        With deregister (an orderly shutdown of the host), deregister the server afterwards.
        """
        if self._stop.is_set():
            if deregister:
                self.deregister(deregister_reason)
            return
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(self.timeout_seconds + 1 if timeout_seconds is None else timeout_seconds)
        if final_report and (thread is None or not thread.is_alive()):
            with self._cycle_lock:
                self.collect()
                self._retry_at = 0.0
                self._flush()  # stops at the first failure: at most one timeout
        if deregister:
            self.deregister(deregister_reason)

    def __enter__(self) -> StatusReporter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: the backoff applies
