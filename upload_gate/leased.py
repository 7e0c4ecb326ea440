"""Leased budgets: fleet-wide limits held exactly, decided at local speed.

Each gate holds, per active client, a slice of the client's fleet-wide budget granted by
the coordinator (budget_coordinator.py): concurrency slots, bytes in flight, rate tokens
and bytes of the day. A decision is local (the gate's lock, no I/O): it admits only within
the slice. A background thread refills slices before they run out (woken when one runs
low or falls short, else every `refill_interval_seconds`), renews them before they
expire, and gives back what demand no longer needs. The only decision that waits for the
coordinator is a client's first one (its first slice is asked for the share mode would
give, ceil(limit / servers)).

The invariant behind the exact bound: the cap a gate decides on is never above what the
coordinator holds for it. It grows only after the coordinator granted more, and shrinks
locally before the gate asks the coordinator to take slots back.

When the coordinator is unreachable the gate drops its slices and decides on shares
(`mode` says "share (coordinator unavailable)") until a probe gets through again.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from .budget_coordinator import BudgetCoordinator, SliceRequest
from .budget_plans import SlicePlanner
from .budget_slice import BudgetSlice, SliceAdmitted
from .decision import Decision
from .limits import LIMIT_DAILY_BYTES, US_PER_DAY, US_PER_SECOND, Limits
from .rules import binding_limit
from .state import Lease

if TYPE_CHECKING:
    from .gate import UploadGate
    from .limits import ClientPolicy
    from .state import ClientState

log = logging.getLogger("upload_gate")


class LeasedMode:
    def __init__(
        self,
        gate: UploadGate,
        redis_url: str | None,
        *,
        client: Any = None,
        key_prefix: str = "upload_gate",
        timeout_seconds: float = 0.25,
        slice_ttl_seconds: float = 10.0,
        refill_interval_seconds: float = 0.05,
        min_backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
    ) -> None:
        self._gate = gate
        self.coordinator = BudgetCoordinator(
            redis_url, client=client, key_prefix=key_prefix, timeout_seconds=timeout_seconds
        )
        self._slice_ttl_us = int(slice_ttl_seconds * US_PER_SECOND)
        # A slice is used locally for 80 % of its time in Redis: room for clock skew
        # between servers (the coordinator expires holders by the caller's wall clock).
        self._local_ttl_us = self._slice_ttl_us * 4 // 5
        self._renew_after_us = self._slice_ttl_us // 3
        self.refill_interval_seconds = refill_interval_seconds
        self._planner = SlicePlanner(refill_interval_seconds, idle_drop_us=self._slice_ttl_us)
        self._call_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.healthy = True
        self.down_since_us: int | None = None
        self.last_error: str | None = None
        self._min_backoff_seconds = min_backoff_seconds
        self._max_backoff_seconds = max_backoff_seconds
        self._backoff_seconds = min_backoff_seconds

    def usable(self) -> bool:
        """False while the coordinator is unreachable (the gate decides on shares)."""
        return self.healthy

    # -- deciding (the gate's admit path) --------------------------------------------------
    def admit(self, client_id: str, size_bytes: int) -> Decision | None:
        """A decision within this gate's slice; None when the gate must decide on its share."""
        decision = self._admit_locally(client_id, size_bytes)
        if decision is not None:
            return decision
        # No slice yet: the one decision that waits for the coordinator.
        if not self._grant_first(client_id):
            return None
        return self._admit_locally(client_id, size_bytes)

    def _admit_locally(self, client_id: str, size_bytes: int) -> Decision | None:
        gate = self._gate
        gate._lock_acquire()
        try:
            now = gate._monotonic_ns() // 1000
            try:
                state = gate._states[client_id]
            except KeyError:
                state = gate._new_state(client_id)
            if now >= state.expiry_check_us:
                state.expire_due(now)
            policy = state.policy
            if policy.pause_configured:
                # The table is read locally: a pause stops admissions however much is leased.
                paused = gate._pause_decision(state, policy)
                if paused is not None:
                    return paused
            budget = state.budget
            if budget is None or now >= budget.valid_until_us:
                return None
            if budget.fleet is not policy.fleet:
                self._adopt_limits(state, budget, policy.fleet)
            # Within the slice: no I/O, a few comparisons (inlined: this is the hot path).
            tokens = budget.tokens
            slots = budget.slots
            bytes_cap = budget.bytes
            day_left = budget.day_bytes
            wall = None
            if day_left is not None:
                wall = gate._wall_ns() // 1000
                if wall // US_PER_DAY != budget.day_index:
                    budget.new_day(wall)
                    day_left = 0
            if (
                (tokens is not None and tokens <= 0)
                or (slots is not None and state.uploads_in_flight >= slots)
                or (bytes_cap is not None and state.bytes_in_flight + size_bytes > bytes_cap)
                or (day_left is not None and size_bytes > day_left)
            ):
                return self._short(state, policy, budget, size_bytes, wall)
            if tokens is not None:
                budget.tokens = tokens = tokens - 1
                if tokens <= budget.tokens_low and not budget.woken:
                    self._wake_refill(budget)
            if day_left is not None:
                budget.day_bytes = day_left = day_left - size_bytes
                if wall // US_PER_DAY != state.day_index:  # type: ignore[operator]
                    gate._roll_day(state, wall)  # type: ignore[arg-type]
                state.day_wall_us = wall  # type: ignore[assignment]
                state.day_bytes += size_bytes
                if day_left <= budget.day_low_bytes and not budget.woken:
                    self._wake_refill(budget)
            lease = Lease(next(gate._lease_ids), state, size_bytes, now + gate._lease_timeout_us)
            state.leases[lease.lease_id] = lease
            in_flight = state.uploads_in_flight = state.uploads_in_flight + 1
            in_flight_bytes = state.bytes_in_flight = state.bytes_in_flight + size_bytes
            if lease.deadline_us < state.expiry_check_us:
                state.expiry_check_us = lease.deadline_us
            state.admitted += 1
            budget.admits += 1
            budget.bytes_admitted += size_bytes
            if in_flight > budget.peak_slots:
                budget.peak_slots = in_flight
                if slots is not None and in_flight >= slots and not budget.woken:
                    self._wake_refill(budget)
            if in_flight_bytes > budget.peak_bytes:
                budget.peak_bytes = in_flight_bytes
            if size_bytes > budget.max_size_bytes:
                budget.max_size_bytes = size_bytes
            # The header numbers as they are now; worked out only if headers are asked for.
            numbers = (policy.fleet, tokens, budget.rate_wait_us, slots, bytes_cap, day_left)
            return SliceAdmitted(lease, (numbers, in_flight, in_flight_bytes, state.day_bytes, wall))
        finally:
            gate._lock_release()

    def _short(
        self, state: ClientState, policy: ClientPolicy, budget: BudgetSlice, size_bytes: int, wall: int | None
    ) -> Decision:
        """The slice does not cover this upload: 429 now, and the refill asks for more."""
        gate = self._gate
        budget.short += 1
        budget.short_bytes += size_bytes
        if size_bytes > budget.max_size_bytes:
            budget.max_size_bytes = size_bytes
        if not (budget.woken or budget.quiet):
            self._wake_refill(budget)
        view = budget.header_view(state, policy.fleet, wall)
        limit, wait_us = binding_limit(*view, size_bytes, gate._busy_wait_us)  # type: ignore[misc]
        if limit == LIMIT_DAILY_BYTES and not budget.day_exhausted:
            wait_us = gate._busy_wait_us  # the fleet has bytes left today: more comes soon
        state.throttled += 1
        return gate.rejections.throttled(limit, wait_us, view, policy.reduced)

    def _adopt_limits(self, state: ClientState, budget: BudgetSlice, new: Limits) -> None:
        if budget.adopt_limits(state, new):
            self._wake_refill(budget)

    def _final(self, state: ClientState) -> SliceRequest:
        request = self._request(state, state.budget)
        self._planner.final(state.budget, request)
        return request

    def _wake_refill(self, budget: BudgetSlice) -> None:
        budget.woken = True
        self._wake.set()

    # -- refilling (off the decision path) -----------------------------------------------
    def _grant_first(self, client_id: str) -> bool:
        """A client's first slice, asked for synchronously; False: decide on the share."""
        if not self.healthy:
            return False
        with self._call_lock:
            gate = self._gate
            with gate._lock:
                state = gate._states.get(client_id) or gate._new_state(client_id)
                now = gate._monotonic_ns() // 1000
                budget = state.budget
                if budget is not None and now < budget.valid_until_us:
                    return True  # the refill thread was quicker
                budget = BudgetSlice(state.policy.fleet, now)
                request = self._request(state, budget)
                self._planner.first(state, budget, request)
            return self._call([(state, budget, request, False)])

    def _request(self, state: ClientState, budget: BudgetSlice) -> SliceRequest:
        if state.redis_keys is None:
            state.redis_keys = self.coordinator.client_keys(state.client_id)
        day_index = self._gate._wall_ns() // 1000 // US_PER_DAY
        if budget.day_index != day_index:
            budget.day_index = day_index
            if budget.day_bytes:
                budget.day_bytes = 0
        return SliceRequest(state.client_id, state.redis_keys, budget.fleet, day_index)

    def refill_now(self) -> int:
        """One refill round; returns the coordinator calls it made (tests call it directly)."""
        with self._call_lock:
            if not self.healthy and not self._probe():
                return 0
            plans = self._plan_round()
            if not plans:
                return 0
            self._call(plans)
            return len(plans)

    def _plan_round(self) -> list[tuple[ClientState, BudgetSlice, SliceRequest, bool]]:
        """Under the gate's lock: what each slice asks for. Shrinks happen here, before the call."""
        gate = self._gate
        plans = []
        with gate._lock:
            now = gate._monotonic_ns() // 1000
            for state in list(gate._states.values()):
                budget = state.budget
                if budget is None:
                    continue
                if budget.fleet is not state.policy.fleet:
                    self._adopt_limits(state, budget, state.policy.fleet)
                if now >= state.expiry_check_us:
                    state.expire_due(now)
                plan = self._plan_one(state, budget, now)
                if plan is not None:
                    plans.append(plan)
        return plans

    def _plan_one(
        self, state: ClientState, budget: BudgetSlice, now: int
    ) -> tuple[ClientState, BudgetSlice, SliceRequest, bool] | None:
        if self._planner.idle(state, budget, now):
            request = self._request(state, budget)
            self._planner.final(budget, request)
            return state, budget, request, True
        request = self._request(state, budget)
        if not self._planner.plan(state, budget, request, now):
            return None
        return state, budget, request, False

    def _call(self, plans: list[tuple[ClientState, BudgetSlice, SliceRequest, bool]]) -> bool:
        """One pipelined round trip; the grants are applied under the gate's lock."""
        gate = self._gate
        wall = gate._wall_ns() // 1000
        try:
            grants = self.coordinator.lease(
                gate.server_id, [plan[2] for plan in plans], wall_us=wall, slice_ttl_us=self._slice_ttl_us
            )
        except self.coordinator.errors as exc:
            self._mark_down(exc)
            return False
        with gate._lock:
            for (state, budget, request, final), grant in zip(plans, grants, strict=True):
                if final:
                    if state.budget is budget:
                        state.budget = None
                    continue
                budget.apply(request, grant, self._local_ttl_us, self._renew_after_us)
                state.budget = budget
        return True

    # -- health ------------------------------------------------------------------------
    def _mark_down(self, exc: BaseException) -> None:
        gate = self._gate
        self.last_error = f"{type(exc).__name__}: {exc}"
        with gate._lock:
            for state in gate._states.values():
                state.budget = None  # held in Redis until it expires; others cannot take it
        if self.healthy:
            self.healthy = False
            self.down_since_us = gate._wall_ns() // 1000
            self._backoff_seconds = self._min_backoff_seconds
            log.warning("budget coordinator unreachable, enforcing local shares: %s", self.last_error)
        else:
            self._backoff_seconds = min(self._max_backoff_seconds, self._backoff_seconds * 2)

    def _probe(self) -> bool:
        try:
            self.coordinator.ping()
        except self.coordinator.errors as exc:
            self._mark_down(exc)
            return False
        self.healthy = True
        self.down_since_us = None
        self.last_error = None
        self._backoff_seconds = self._min_backoff_seconds
        log.warning("budget coordinator reachable again, deciding on leased budgets")
        return True

    # -- the background thread -------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._refill_loop, name="upload-gate-budget", daemon=True)
            self._thread.start()

    def _refill_loop(self) -> None:
        while not self._stop.is_set():
            wait = self.refill_interval_seconds if self.healthy else self._backoff_seconds
            self._wake.wait(wait)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.refill_now()
            except Exception:  # a bug must not end refilling: decisions would stop at slice expiry
                log.exception("refilling leased budgets failed")
            # Wakes that come sooner wait this long: a burst of 429s is one call, not hundreds.
            self._stop.wait(self.refill_interval_seconds / 5)

    def close(self) -> None:
        """Stop refilling and give back every slice (what is in flight here ends with us)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        if self.healthy:
            gate = self._gate
            with self._call_lock:
                with gate._lock:
                    plans = [
                        (state, state.budget, self._final(state), True)
                        for state in gate._states.values()
                        if state.budget is not None
                    ]
                if plans:
                    self._call(plans)
        self.coordinator.close()
