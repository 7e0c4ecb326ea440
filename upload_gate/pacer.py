"""The SDK pacer: a queue an import script wraps around each upload call (docs/sdk-pacing.md).

    from upload_gate.pacer import Pacer, UploadRejected

    def upload(item, attempt):
        answer = presign(item)                      # the API's presign: where the gate answers
        if answer.status >= 400:
            raise UploadRejected(answer.status, answer.headers)
        attempt.admitted(answer.headers)            # RateLimit: room left on the server
        post_to_s3(answer.presigned_post, item)     # a timeout or network error is retried

    result = Pacer(upload).run(items, on_progress=print)

`Pacer` drives the algorithm (`upload_gate.pacing.PacerCore`: no thread, no clock) with
threads and the monotonic clock; fleet_sim drives the same core on the simulation clock.
Standard library only.
"""

from __future__ import annotations

import random as random_module
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .pacing import Entry, PacerCore, PacerSettings, Progress, retry_after_seconds

__all__ = ["Attempt", "Pacer", "PacerCore", "PacerResult", "PacerSettings", "Progress", "UploadRejected"]
__all__ += ["retry_after_seconds"]


class UploadRejected(Exception):
    """The gate's (or any HTTP) answer to an upload: raise it from the upload function."""

    def __init__(self, status: int, headers: Mapping[str, str] | None = None, reason: str = "") -> None:
        super().__init__(f"HTTP {status}{': ' + reason if reason else ''}")
        self.status = status
        self.headers = headers or {}


class Attempt:
    """What the upload function gets with its item: the attempt's number, a cancelled event
    to check between steps, and admitted(headers) to call with the presign's answer."""

    def __init__(self, pacer: Pacer, entry: Entry) -> None:
        self._pacer = pacer
        self._entry = entry
        self.number = entry.attempts
        self.cancelled = pacer.cancelled_event

    def admitted(self, headers: Any = None) -> None:
        self._pacer._record(lambda now: self._pacer.core.admitted(self._entry, now, headers))


@dataclass
class PacerResult:
    done: list = field(default_factory=list)  # (item, what the upload returned)
    failed: list = field(default_factory=list)  # (item, why)
    cancelled: list = field(default_factory=list)
    progress: Progress | None = None


class Pacer:
    """Runs upload(item, attempt) over the items, as fast as the gate's answers allow."""

    def __init__(
        self,
        upload: Callable[[Any, Attempt], Any],
        settings: PacerSettings | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = random_module.random,
        **setting_values: Any,
    ) -> None:
        self.upload = upload
        self.settings = settings or PacerSettings(**setting_values)
        self._monotonic = monotonic
        self._random = random
        self._condition = threading.Condition()
        self.cancelled_event = threading.Event()
        self.core = PacerCore([], self.settings, random)
        self._results: dict[int, Any] = {}
        self._on_progress: Callable[[Progress], None] | None = None

    def run(self, items: Iterable[Any], on_progress: Callable[[Progress], None] | None = None) -> PacerResult:
        self.core = PacerCore(items, self.settings, self._random)
        self._on_progress = on_progress
        with ThreadPoolExecutor(self.settings.max_concurrency, thread_name_prefix="pacer") as pool:
            with self._condition:
                while not self.core.finished:
                    self._start_what_may_start(pool)
                    wake_at = self.core.wake_at(self._monotonic())
                    timeout = None if wake_at is None else max(0.0, wake_at - self._monotonic())
                    if not self.core.finished:
                        self._condition.wait(timeout)
                self._report()  # the last change: everything done, failed or cancelled
        return self._result()

    def cancel(self) -> None:
        """Stop starting uploads; those in flight see attempt.cancelled and end as they end."""
        self.cancelled_event.set()
        self._record(lambda now: self.core.cancel())

    def _start_what_may_start(self, pool: ThreadPoolExecutor) -> None:
        if self.cancelled_event.is_set() and self.core.queue:
            self.core.cancel()
        while (entry := self.core.next_start(self._monotonic())) is not None:
            pool.submit(self._attempt, entry)
        self._report()

    def _attempt(self, entry: Entry | None) -> None:
        # A worker that ends an upload takes the next one itself when the pacer allows it:
        # no wait for the run loop's thread to wake up and hand it over.
        while entry is not None:
            try:
                value = self.upload(entry.item, Attempt(self, entry))
            except Exception as error:  # noqa: BLE001 - every failure is sorted into wait, retry or give up
                entry = self._end_and_take_next(lambda now, entry=entry, error=error: self._failed(entry, now, error))
                continue
            self._results[entry.index] = value
            headers = getattr(value, "headers", None)
            entry = self._end_and_take_next(
                lambda now, entry=entry, headers=headers: self.core.succeeded(entry, now, headers)
            )

    def _end_and_take_next(self, change: Callable[[float], None]) -> Entry | None:
        with self._condition:
            change(self._monotonic())
            entry = None if self.cancelled_event.is_set() else self.core.next_start(self._monotonic())
            self._report()
            self._condition.notify_all()
            return entry

    def _failed(self, entry: Entry, now: float, error: Exception) -> None:
        status = http_status_of(error)
        if self.cancelled_event.is_set() and status is None:
            self.core.cancelled_in_flight(entry)
        elif status is not None:
            self.core.rejected(entry, now, status, headers_of(error))
        elif isinstance(error, OSError):  # TimeoutError, ConnectionError, URLError, socket errors
            self.core.transient_error(entry, now, f"{type(error).__name__}: {error}")
        else:
            self.core.permanent_error(entry, f"{type(error).__name__}: {error}")

    def _record(self, change: Callable[[float], None]) -> None:
        with self._condition:
            change(self._monotonic())
            self._condition.notify_all()

    def _report(self) -> None:
        if self._on_progress is not None:
            self._on_progress(self.core.progress(self._monotonic()))

    def _result(self) -> PacerResult:
        core = self.core
        return PacerResult(
            done=[(entry.item, self._results.get(entry.index)) for entry in core.done],
            failed=[(entry.item, reason) for entry, reason in core.failed],
            cancelled=[entry.item for entry in core.cancelled],
            progress=core.progress(self._monotonic()),
        )


def http_status_of(error: Exception) -> int | None:
    """The HTTP status an exception carries: ours, urllib's HTTPError, requests' or httpx's."""
    for holder in (error, getattr(error, "response", None)):
        for name in ("status", "status_code", "code"):
            value = getattr(holder, name, None)
            if isinstance(value, int) and 100 <= value <= 599:
                return value
    return None


def headers_of(error: Exception) -> Any:
    headers = getattr(error, "headers", None)
    if headers is None:
        headers = getattr(getattr(error, "response", None), "headers", None)
    return headers
