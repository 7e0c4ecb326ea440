"""What a gate asks the coordinator for, per client and refill (leased-budget mode).

Slices follow demand, measured between two calls: concurrency and bytes in flight ask for
the peak used, one spare and what was turned away (twice the peak when uploads were turned
away: demand may be far above it); they keep what no other gate wants and drain to their
fair part when others do. Tokens and daily bytes ask for the demand of the next second.
What demand no longer needs is given back, after the gate has stopped deciding on it
(under the gate's lock, before the call).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .limits import US_PER_SECOND

# How long a burst's demand is remembered when sizing tokens and daily bytes (halved per period).
DEMAND_HALF_LIFE_SECONDS = 1.0
DEMAND_HORIZON_US = 1_000_000

if TYPE_CHECKING:
    from .budget_coordinator import SliceRequest
    from .budget_slice import BudgetSlice
    from .state import ClientState


class SlicePlanner:
    def __init__(self, refill_interval_seconds: float, idle_drop_us: int) -> None:
        self.refill_interval_us = max(1, int(refill_interval_seconds * US_PER_SECOND))
        # Tokens and daily bytes are sized for this much demand ahead: refilled at half, a
        # slice then has half a second to spare for a refill that waits for the GIL or Redis.
        self.horizon_us = max(self.refill_interval_us * 4, DEMAND_HORIZON_US)
        self.idle_drop_us = idle_drop_us
        # A gate holding idle slots or bytes asks again this often (others may want them).
        self.recheck_us = self.refill_interval_us * 5

    def idle(self, state: ClientState, budget: BudgetSlice, now: int) -> bool:
        """Nothing asked for a whole slice lifetime and nothing in flight: give it all back."""
        if budget.admits or budget.short:
            budget.idle_since_us = now
            return False
        return now - budget.idle_since_us >= self.idle_drop_us and not state.leases

    def plan(self, state: ClientState, budget: BudgetSlice, request: SliceRequest, now: int) -> bool:
        """Fill in request; True when the coordinator must be called for this client now."""
        # Demand is measured over at least one refill interval: a wake just after a grant
        # must not extrapolate a few admissions into a huge slice.
        elapsed_us = max(self.refill_interval_us, now - budget.asked_us)
        self.plan_slots(state, budget, request)
        self.plan_bytes(state, budget, request)
        self.plan_tokens(budget, request, elapsed_us, now)
        self.plan_day(budget, request, elapsed_us)
        # Slots and bytes held beyond demand are kept while nobody else wants them; every
        # few rounds the coordinator is asked again, and its fair target (applied when the
        # answer comes) makes the gate drain down to its part.
        idle_slots = budget.slots is not None and budget.slots_held > state.uploads_in_flight + 1
        idle_bytes = budget.bytes is not None and budget.bytes_held > state.bytes_in_flight + budget.max_size_bytes
        # Held for this gate beyond what it now decides on (its fair part went down): give back now.
        draining = (budget.slots is not None and budget.slots_held > request.keep_slots) or (
            budget.bytes is not None and budget.bytes_held > request.keep_bytes
        )
        giving_back = (
            draining
            or ((idle_slots or idle_bytes) and elapsed_us >= self.recheck_us)
            or request.return_tokens
            or request.return_day_bytes
        )
        # Out of tokens, and the fleet-wide bucket has one again: ask before the client retries.
        starved = (
            budget.tokens is not None
            and budget.tokens <= budget.tokens_low
            and now >= budget.tokens_due_us
            and now - budget.idle_since_us < self.idle_drop_us
        )
        due = budget.void or budget.woken or budget.short or starved or now >= budget.renew_at_us
        if not (due or giving_back):
            return False
        budget.admits = budget.short = budget.bytes_admitted = budget.short_bytes = 0
        budget.token_rate, budget.byte_rate = budget.next_token_rate, budget.next_byte_rate
        budget.peak_slots = state.uploads_in_flight
        budget.peak_bytes = state.bytes_in_flight
        budget.asked_us = now
        budget.woken = False
        return True

    def first(self, state: ClientState, budget: BudgetSlice, request: SliceRequest) -> None:
        """Ask for the share mode would give: ceil(limit / live servers) of each limit."""
        share = state.policy.share
        fleet = budget.fleet
        keep = state.uploads_in_flight
        request.keep_slots = keep
        request.want_slots = max(keep + 1, share.max_concurrent_uploads or 0)
        request.keep_bytes = state.bytes_in_flight
        request.want_bytes = max(state.bytes_in_flight, share.max_bytes_in_flight or 0)
        request.want_tokens = max(1, share.burst or 0) if fleet.interval_us else 0
        request.want_day_bytes = share.daily_upload_bytes or 0
        budget.slots = None if fleet.max_concurrent_uploads is None else keep
        budget.bytes = None if fleet.max_bytes_in_flight is None else state.bytes_in_flight
        budget.tokens = None if fleet.interval_us is None else 0
        budget.day_bytes = None if fleet.daily_upload_bytes is None else 0
        budget.peak_slots = keep
        budget.peak_bytes = state.bytes_in_flight

    @staticmethod
    def final(budget: BudgetSlice, request: SliceRequest) -> None:
        """An idle client gives everything back; its next upload asks afresh."""
        request.return_tokens = (budget.tokens or 0) + budget.tokens_to_return
        request.return_day_bytes = (budget.day_bytes or 0) + budget.day_bytes_to_return
        budget.slots = 0 if budget.slots is not None else None
        budget.bytes = 0 if budget.bytes is not None else None
        budget.tokens = 0 if budget.tokens is not None else None
        budget.day_bytes = 0 if budget.day_bytes is not None else None
        budget.valid_until_us = 0

    @staticmethod
    def plan_slots(state: ClientState, budget: BudgetSlice, request: SliceRequest) -> None:
        if budget.slots is None:
            return
        keep = max(state.uploads_in_flight, budget.slots)
        request.keep_slots = keep
        # What the gate used at its peak, one spare, and what it had to turn away; a slice
        # that turned uploads away asks for twice its peak (demand may be far above it, as in
        # slow start). A full slice that turned none away asks for no more than it uses: the
        # want counts in the other servers' fair parts.
        peak = max(budget.peak_slots, state.uploads_in_flight)
        want = peak + 1 + budget.short + (peak if budget.short else 0)
        cap = budget.fleet.max_concurrent_uploads
        request.want_slots = min(want, cap) if cap is not None else want

    @staticmethod
    def plan_bytes(state: ClientState, budget: BudgetSlice, request: SliceRequest) -> None:
        if budget.bytes is None:
            return
        keep = max(state.bytes_in_flight, budget.bytes)
        request.keep_bytes = keep
        peak = max(budget.peak_bytes, state.bytes_in_flight)
        want = peak + budget.max_size_bytes + budget.short_bytes
        if budget.short_bytes:
            want += peak
        cap = budget.fleet.max_bytes_in_flight
        request.want_bytes = min(want, cap) if cap is not None else want

    def demand_per_second(self, recent: int, remembered: float, elapsed_us: int) -> float:
        """Demand since the last call, or the remembered one decayed with a half-life of
        DEMAND_HALF_LIFE_SECONDS, whichever is higher: a pause of a few refill rounds
        does not shrink a slice the next burst needs."""
        elapsed_seconds = elapsed_us / US_PER_SECOND
        decayed = remembered * 0.5 ** (elapsed_seconds / DEMAND_HALF_LIFE_SECONDS)
        return max(recent / elapsed_seconds, decayed)

    def plan_tokens(self, budget: BudgetSlice, request: SliceRequest, elapsed_us: int, now: int) -> None:
        if budget.tokens is None:
            return
        request.return_tokens, budget.tokens_to_return = budget.tokens_to_return, 0
        rate = self.demand_per_second(budget.admits + budget.short, budget.token_rate, elapsed_us)
        budget.next_token_rate = rate
        wanted = int(rate * self.horizon_us / US_PER_SECOND) + budget.short + 1
        held = budget.tokens
        if held and now - budget.tokens_at_us >= self.horizon_us:
            # Tokens granted more than a horizon ago beyond what the demand spends in the next
            # one go back: a token is a request that conformed when it was granted, not one to
            # add to a later full burst.
            kept = min(held, int(rate * self.horizon_us / US_PER_SECOND))
            if kept < held:
                budget.tokens = kept
                request.return_tokens += held - kept
                held = kept
            budget.tokens_at_us = now
        # Given back only when measured over a whole horizon: a short window underestimates.
        if held > 4 * wanted and elapsed_us >= self.horizon_us:
            giving = held - 2 * wanted
            budget.tokens = held - giving  # spend no more of them, then give them back
            request.return_tokens += giving
        elif held < wanted:
            request.want_tokens = 2 * wanted - held

    def plan_day(self, budget: BudgetSlice, request: SliceRequest, elapsed_us: int) -> None:
        if budget.day_bytes is None:
            return
        request.return_day_bytes, budget.day_bytes_to_return = budget.day_bytes_to_return, 0
        rate = self.demand_per_second(budget.bytes_admitted + budget.short_bytes, budget.byte_rate, elapsed_us)
        budget.next_byte_rate = rate
        wanted = int(rate * self.horizon_us / US_PER_SECOND) + budget.max_size_bytes
        held = budget.day_bytes
        if held > 4 * wanted and elapsed_us >= self.horizon_us:
            giving = held - 2 * wanted
            budget.day_bytes = held - giving
            request.return_day_bytes += giving
        elif held < wanted:
            request.want_day_bytes = 2 * wanted - held
