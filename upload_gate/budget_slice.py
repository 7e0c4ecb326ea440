"""One client's slice of its fleet-wide budget on one gate (leased-budget mode).

Touched under the gate's lock only. `slots`, `bytes`, `tokens` and `day_bytes` are what the
gate decides on; None means that limit is not set. `slots_held` / `bytes_held` are what the
coordinator holds for the gate: never below the caps decided on (leased.py says why).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .decision import Admitted
from .limits import US_PER_DAY, Limits

if TYPE_CHECKING:
    from .budget_coordinator import SliceGrant, SliceRequest
    from .state import ClientState


class BudgetSlice:
    """One client's slice on this gate. None in a cap means that limit is not set."""

    __slots__ = (
        "fleet",
        "slots",
        "slots_held",
        "bytes",
        "bytes_held",
        "tokens",
        "tokens_low",
        "rate_wait_us",
        "day_bytes",
        "day_low_bytes",
        "day_index",
        "day_exhausted",
        "tokens_to_return",
        "day_bytes_to_return",
        "asked_us",
        "valid_until_us",
        "renew_at_us",
        "idle_since_us",
        "admits",
        "short",
        "bytes_admitted",
        "short_bytes",
        "peak_slots",
        "peak_bytes",
        "max_size_bytes",
        "tokens_due_us",
        "tokens_at_us",
        "token_rate",
        "byte_rate",
        "next_token_rate",
        "next_byte_rate",
        "void",
        "woken",
        "quiet",
    )

    def __init__(self, fleet: Limits, now_us: int) -> None:
        self.fleet = fleet
        self.slots: int | None = 0
        self.bytes: int | None = 0
        self.slots_held = self.bytes_held = 0
        self.tokens: int | None = 0
        self.tokens_low = 0
        self.rate_wait_us = 0
        self.day_bytes: int | None = 0
        self.day_low_bytes = 0
        self.day_index = -1
        self.day_exhausted = False
        self.tokens_to_return = self.day_bytes_to_return = 0
        self.asked_us = now_us
        self.valid_until_us = 0
        self.renew_at_us = 0
        self.idle_since_us = now_us
        self.admits = self.short = self.bytes_admitted = self.short_bytes = 0
        self.peak_slots = self.peak_bytes = self.max_size_bytes = 0
        self.tokens_due_us = 0
        self.tokens_at_us = now_us  # when tokens were last granted
        # Demand remembered between calls (per second), for tokens and daily bytes.
        self.token_rate = self.byte_rate = self.next_token_rate = self.next_byte_rate = 0.0
        self.void = False
        self.woken = False
        self.quiet = False

    def header_view(self, state: ClientState, limits: Limits, wall: int | None) -> tuple:
        """The header numbers of this slice now (see slice_view)."""
        numbers = (limits, self.tokens, self.rate_wait_us, self.slots, self.bytes, self.day_bytes)
        return slice_view(numbers, state.uploads_in_flight, state.bytes_in_flight, state.day_bytes, wall)

    def new_day(self, wall_us: int) -> None:
        """Yesterday's allowance is void; today's is asked for by the next refill."""
        self.day_index = wall_us // US_PER_DAY
        self.day_bytes = 0
        self.day_bytes_to_return = 0
        self.void = True

    def adopt_limits(self, state: ClientState, new: Limits) -> bool:
        """A reload changed the client's row. A lowered limit voids what the slice would
        still admit (it was granted under the old limit); the next refill asks again.
        True when it did (the caller wakes the refill)."""
        old = self.fleet
        self.fleet = new
        tightened = False
        if new.max_concurrent_uploads is None:
            self.slots = None
        elif _tighter(new.max_concurrent_uploads, old.max_concurrent_uploads):
            self.slots = 0  # nothing more until the coordinator has seen the new limit
            tightened = True
        if new.max_bytes_in_flight is None:
            self.bytes = None
        elif _tighter(new.max_bytes_in_flight, old.max_bytes_in_flight):
            self.bytes = 0
            tightened = True
        if new.interval_us is None:
            self.tokens = None
        elif _tighter(new.requests_per_minute, old.requests_per_minute) or _tighter(new.burst, old.burst):
            # Tokens taken under the old rate are dropped, not given back: the old rate spent them.
            self.tokens = 0
            tightened = True
        if new.daily_upload_bytes is None:
            self.day_bytes = None
        elif _tighter(new.daily_upload_bytes, old.daily_upload_bytes):
            self.day_bytes_to_return += self.day_bytes or 0
            self.day_bytes = 0
            tightened = True
        if tightened:
            self.void = True
        return tightened

    def apply(self, request: SliceRequest, grant: SliceGrant, local_ttl_us: int, renew_after_us: int) -> None:
        """What the coordinator now holds for this gate becomes the cap decided on (or the
        fair target, when that is lower: the gate then drains down to it)."""
        asked = self.asked_us
        fleet = self.fleet
        if grant.slots >= 0 and self.slots is not None:
            self.slots_held = grant.slots
            self.slots = decision_cap(fleet.max_concurrent_uploads, grant.slots, grant.slots_target, grant.slots_others)
        if grant.bytes >= 0 and self.bytes is not None:
            self.bytes_held = grant.bytes
            self.bytes = decision_cap(fleet.max_bytes_in_flight, grant.bytes, grant.bytes_target, grant.bytes_others)
        if grant.tokens >= 0 and self.tokens is not None:
            self.tokens += grant.tokens
            if grant.tokens:
                self.tokens_at_us = asked
            self.tokens_low = grant.tokens // 2
            self.rate_wait_us = max(0, grant.rate_wait_us)
            interval = fleet.interval_us or 0
            self.tokens_due_us = asked + max(self.rate_wait_us, interval)
        if grant.day_bytes >= 0 and self.day_bytes is not None:
            self.day_bytes += grant.day_bytes
            self.day_low_bytes = grant.day_bytes // 2
            self.day_exhausted = grant.day_bytes < request.want_day_bytes
        # Nothing more to be had: further 429s wait for the next regular round to ask again.
        self.quiet = not (
            self.slots_held > request.keep_slots
            or self.bytes_held > request.keep_bytes
            or grant.tokens > 0
            or grant.day_bytes > 0
        )
        self.void = False
        self.valid_until_us = asked + local_ttl_us
        self.renew_at_us = asked + renew_after_us


def _tighter(new: int | None, old: int | None) -> bool:
    return new is not None and (old is None or new < old)


def decision_cap(cap: int | None, held: int, target: int, others: int) -> int:
    """What the gate may fill: never above what is held for it, its fair part, or what the
    others leave of the limit (after a lowered limit the others may hold more than it:
    uploads already running, which the gate waits out rather than adds to)."""
    decided = min(held, target)
    if cap is not None:
        decided = min(decided, max(0, cap - others))
    return decided


def slice_view(numbers: tuple, uploads: int, in_flight_bytes: int, day_bytes: int, wall: int | None) -> tuple:
    """The header numbers: the fleet-wide quotas, and as remaining what this gate can still
    admit from its slice (so RateLimit's r is never a promise the gate breaks)."""
    limits, tokens, rate_wait_us, slots, bytes_cap, day_left = numbers
    gap = 0
    if tokens is not None:
        interval = limits.interval_us or 0
        if tokens <= 0:
            gap = limits.tolerance_us + max(rate_wait_us, interval, 1)
        else:
            gap = max(0, limits.tolerance_us - (tokens - 1) * interval)
    if slots is not None:
        uploads = limits.max_concurrent_uploads - (slots - uploads)
    if bytes_cap is not None:
        in_flight_bytes = limits.max_bytes_in_flight - (bytes_cap - in_flight_bytes)
    if day_left is not None:
        day_bytes = limits.daily_upload_bytes - day_left
    return (limits, gap, uploads, in_flight_bytes, day_bytes, wall)


class SliceAdmitted(Admitted):
    """Admitted within a slice: `_view` holds the raw numbers of the decision until the
    headers are asked for (most callers never do), then the header view."""

    __slots__ = ()

    def headers(self) -> dict[str, str]:
        if self._headers is None:
            self._view = slice_view(*self._view)  # type: ignore[misc]
        return Admitted.headers(self)
