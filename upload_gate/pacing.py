"""The SDK pacer's decisions (docs/sdk-pacing.md): `PacerCore`, with no thread and no clock.

Every method takes `now` in seconds, so whoever owns the clock drives it: the threaded
`upload_gate.pacer.Pacer` on the monotonic clock, fleet_sim on the simulation clock.
clients/node/pacer.js is the same algorithm in JavaScript: change both. Standard library only.
"""

from __future__ import annotations

import random as random_module
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from .headers import POLICY_CONCURRENCY, POLICY_RATE, parse_quota_items

STATUS_THROTTLED = 429
STATUS_UNAVAILABLE = 503
# Answers worth asking again after a backoff: the server may be better in a moment.
TRANSIENT_STATUSES = frozenset({408, 500, 502, 504})


@dataclass(frozen=True)
class PacerSettings:
    initial_concurrency: int = 2
    max_concurrency: int = 16
    max_attempts: int = 5
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    default_retry_after_seconds: float = 5.0
    eta_window: int = 20
    # How long the server must go on counting fewer of our uploads than we have in flight
    # before the pacer believes the others are on other servers (see _follow_concurrency).
    spread_confirm_seconds: float = 1.0

    def __post_init__(self) -> None:
        if not 1 <= self.initial_concurrency <= self.max_concurrency:
            raise ValueError("initial_concurrency must be within 1..max_concurrency")
        if self.max_attempts < 1 or self.eta_window < 2:
            raise ValueError("max_attempts must be 1 or more and eta_window 2 or more")


@dataclass(frozen=True)
class Progress:
    done: int
    failed: int
    cancelled: int
    in_flight: int
    waiting: int
    concurrency: int
    throttled: int
    retries: int
    held_for_seconds: float
    eta_seconds: float | None


@dataclass
class Entry:
    """One item in the queue: when it may be tried again, and how often it failed in a row."""

    item: Any
    index: int
    not_before: float = 0.0
    failures: int = 0
    attempts: int = 0
    admitted: bool = False  # the current attempt's admission was already learnt from


def header(headers: Any, name: str) -> str | None:
    """A header's value from a dict (any case), an email.message.Message or http.client's."""
    if headers is None:
        return None
    getter = getattr(headers, "get", None)
    value = getter(name) if getter else None
    if value is None and isinstance(headers, Mapping):
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def retry_after_seconds(value: str | None, wall_seconds: float | None = None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP-date; None if unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = time.time() if wall_seconds is None else wall_seconds
    return max(0.0, when.timestamp() - now)


class PacerCore:
    """The pacer's decisions, driven by whoever owns the clock (docs/sdk-pacing.md)."""

    def __init__(
        self,
        items: Iterable[Any],
        settings: PacerSettings | None = None,
        random: Callable[[], float] = random_module.random,
    ) -> None:
        self.settings = settings or PacerSettings()
        self._random = random
        self.queue: deque[Entry] = deque(Entry(item, index) for index, item in enumerate(items))
        self.total = len(self.queue)
        self.in_flight: dict[int, Entry] = {}
        # Uploads in flight whose admission the pacer has learnt: the server's RateLimit `r`
        # was computed with these counted, not with those still waiting for their answer.
        self.admitted_in_flight = 0
        # Since when every admission has shown the server counting at least two fewer of our
        # uploads than we have in flight (None: the last one did not).
        self.spread_since: float | None = None
        self.limit = self.settings.initial_concurrency
        self.hold_until = 0.0
        self.next_start_at = 0.0
        self.done: list[Entry] = []
        self.failed: list[tuple[Entry, str]] = []
        self.cancelled: list[Entry] = []
        self.throttled = 0
        self.retries = 0
        self._completions: deque[float] = deque(maxlen=self.settings.eta_window)

    # -- starting ----------------------------------------------------------------------
    def next_start(self, now: float) -> Entry | None:
        """The item to start now (it is then in flight), or None."""
        if len(self.in_flight) >= self.limit or now < self.hold_until or now < self.next_start_at:
            return None
        for entry in self.queue:
            if entry.not_before <= now:
                self.queue.remove(entry)
                entry.attempts += 1
                entry.admitted = False
                self.in_flight[entry.index] = entry
                return entry
        return None

    def wake_at(self, now: float) -> float | None:
        """When a start may become possible without an attempt ending; None: only an end can."""
        if not self.queue or len(self.in_flight) >= self.limit:
            return None
        earliest_item = min(entry.not_before for entry in self.queue)
        return max(earliest_item, self.hold_until, self.next_start_at, now)

    @property
    def finished(self) -> bool:
        return not self.queue and not self.in_flight

    # -- what the server answered --------------------------------------------------------
    def admitted(self, entry: Entry, now: float, headers: Any = None) -> None:
        """The gate admitted this attempt (its presign answer): grow, within RateLimit."""
        if entry.admitted:
            return
        entry.admitted = True
        self.admitted_in_flight += 1
        remaining = parse_quota_items(header(headers, "RateLimit"))
        # Grow only while the server says it has room: an answer saying it is full (perhaps
        # with another importer of the same partner) never raises the concurrency.
        if remaining.get(POLICY_CONCURRENCY, {}).get("r") != 0:
            self.limit = min(self.settings.max_concurrency, self.limit + 1)
        policy = parse_quota_items(header(headers, "RateLimit-Policy"))
        self._follow_concurrency(remaining, policy, now)
        self._follow_rate(remaining, policy, now)

    def succeeded(self, entry: Entry, now: float, headers: Any = None, more: bool = False) -> None:
        """The attempt worked. more=True: the item has another request to make (a file's next
        part); it goes back to the front of the queue."""
        self.admitted(entry, now, headers)
        self._end(entry)
        entry.failures = 0
        if more:
            entry.not_before = now
            self.queue.appendleft(entry)
            return
        self.done.append(entry)
        self._completions.append(now)

    def rejected(self, entry: Entry, now: float, status: int, headers: Any = None) -> None:
        """An HTTP answer of 400 or more: wait, retry or give up, as the status says."""
        if status == STATUS_THROTTLED or status == STATUS_UNAVAILABLE:
            self._throttled(entry, now, status, headers)
        elif status in TRANSIENT_STATUSES or status >= 500:
            self.transient_error(entry, now, f"HTTP {status}")
        else:
            self.permanent_error(entry, f"HTTP {status}")

    def _throttled(self, entry: Entry, now: float, status: int, headers: Any) -> None:
        self._end(entry)
        self.throttled += 1
        wait = retry_after_seconds(header(headers, "Retry-After"))
        wait = self.settings.default_retry_after_seconds if wait is None else wait
        remaining = parse_quota_items(header(headers, "RateLimit"))
        if status == STATUS_UNAVAILABLE and not remaining:
            # A pause (or a gate failing closed) is not a quota: nobody may start until then.
            self.hold_until = max(self.hold_until, now + wait)
            entry.not_before = self.hold_until
        else:
            entry.not_before = now + wait
            if not remaining:
                self.limit = max(1, min(self.limit, len(self.in_flight)))
            policy = parse_quota_items(header(headers, "RateLimit-Policy"))
            self._follow_concurrency(remaining, policy, now)
            self._follow_rate(remaining, policy, now)
        self._requeue(entry)

    def transient_error(self, entry: Entry, now: float, reason: str = "network error") -> bool:
        """A timeout or network error: retried after a jittered backoff unless it failed
        max_attempts times in a row. Returns whether it will be retried."""
        self._end(entry)
        entry.failures += 1
        self.limit = max(1, self.limit // 2)
        if entry.failures >= self.settings.max_attempts:
            self.failed.append((entry, f"{reason} ({entry.failures} attempts in a row)"))
            return False
        self.retries += 1
        backoff = min(self.settings.backoff_max_seconds, self.settings.backoff_base_seconds * 2 ** (entry.failures - 1))
        entry.not_before = now + backoff * (0.5 + 0.5 * self._random())
        self._requeue(entry)
        return True

    def permanent_error(self, entry: Entry, reason: str) -> None:
        """A 4xx that asking again will not change, or a bug in the upload function."""
        self._end(entry)
        self.failed.append((entry, reason))

    def cancelled_in_flight(self, entry: Entry) -> None:
        """An upload that ended with an error after the import was cancelled: cancelled, not failed."""
        self._end(entry)
        self.cancelled.append(entry)

    def cancel(self) -> None:
        """Nothing new starts; the items not started are cancelled."""
        self.cancelled.extend(self.queue)
        self.queue.clear()

    # -- what to show --------------------------------------------------------------------
    def progress(self, now: float) -> Progress:
        held = max(0.0, self.hold_until - now)
        return Progress(
            done=len(self.done),
            failed=len(self.failed),
            cancelled=len(self.cancelled),
            in_flight=len(self.in_flight),
            waiting=len(self.queue),
            concurrency=self.limit,
            throttled=self.throttled,
            retries=self.retries,
            held_for_seconds=held,
            eta_seconds=self._eta_seconds(held),
        )

    def _eta_seconds(self, held_seconds: float) -> float | None:
        left = len(self.queue) + len(self.in_flight)
        if not left:
            return 0.0
        if len(self._completions) < 2 or self._completions[-1] <= self._completions[0]:
            return None
        per_second = (len(self._completions) - 1) / (self._completions[-1] - self._completions[0])
        return held_seconds + left / per_second

    # -- internals ---------------------------------------------------------------------
    def _end(self, entry: Entry) -> None:
        if self.in_flight.pop(entry.index, None) is not None and entry.admitted:
            self.admitted_in_flight -= 1

    def _requeue(self, entry: Entry) -> None:
        """Back in the queue at its own place (the queue stays in the order given)."""
        for position, other in enumerate(self.queue):
            if other.index > entry.index:
                self.queue.insert(position, entry)
                return
        self.queue.append(entry)

    def _follow_concurrency(self, remaining: dict, policy: dict, now: float | None = None) -> None:
        room = remaining.get(POLICY_CONCURRENCY, {}).get("r")
        if not isinstance(room, int):
            return
        cap = self.admitted_in_flight + room
        quota = policy.get(POLICY_CONCURRENCY, {}).get("q")
        # The server counts quota - room uploads of the partner. When that is all of ours, it
        # is the only server we reach, and its quota is our ceiling: uploads it has already
        # ended, whose answers are still on their way to us, must not raise it. When it counts
        # fewer, either such answers are on their way (uploads that ended together: the gap
        # closes within moments) or the others are on other servers (share mode over a
        # fleet: the gap stays). Only a gap that lasts spread_confirm_seconds lifts the ceiling.
        if isinstance(quota, int) and not self._spread_confirmed(quota - room, now):
            cap = min(cap, quota)
        self.limit = max(1, min(self.limit, cap))

    def _spread_confirmed(self, counted_by_server: int, now: float | None) -> bool:
        if now is None or self.admitted_in_flight - counted_by_server < 2:
            self.spread_since = None
            return False
        if self.spread_since is None:
            self.spread_since = now
        return now - self.spread_since >= self.settings.spread_confirm_seconds

    def _follow_rate(self, remaining: dict, policy: dict, now: float) -> None:
        rate = remaining.get(POLICY_RATE, {})
        if rate.get("r") != 0:
            return
        reset = rate.get("t") if isinstance(rate.get("t"), int) else 60
        quota = policy.get(POLICY_RATE, {})
        if isinstance(quota.get("q"), int) and quota["q"] > 0:
            reset = min(reset, quota.get("w", 60) / quota["q"])
        self.next_start_at = max(self.next_start_at, now + reset)
