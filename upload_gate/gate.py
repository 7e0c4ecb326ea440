"""The upload gate: admit or reject an upload in O(1), in memory, without a query.

    gate = UploadGate("postgresql://reader@db/app")
    decision = gate.admit(client_id, size_bytes)
    if decision.admitted:
        try: ...upload...; gate.release(decision.lease, "completed")
        except Exception: gate.release(decision.lease, "failed")

The table is read by a background refresher (refresh.py); rules are precomputed per
client at reload (limits.py); this module holds the per-client state under one lock,
kept short: no I/O, no string building, no datetime objects on the admit path.
"""

from __future__ import annotations

import itertools
import os
import random as random_module
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from .clock import SystemClock, epoch_us_to_datetime
from .decision import Admitted, Decision
from .limits import US_PER_DAY, US_PER_SECOND, ClientPolicy, build_policies, checked_size_bytes
from .modes import counting_modes
from .refresh import TableRefresher
from .rejections import Rejections
from .renewal import renew_lease
from .rules import binding_limit
from .shadow import shadow_admits, take_shadow_slot
from .sources import StaticSource, TableSource, source_from_url
from .state import COMPLETED, FAILED, OUTCOMES, ClientState, Lease, ShadowLease
from .table import LimitRow, TableSnapshot, fallback_row

STATUS_ADMITTED = 200


class UploadGate:
    """Admission control for one upload server. Thread-safe."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        source: TableSource | None = None,
        fallback_limits: Mapping[str, Any] | LimitRow | None = None,
        lease_timeout_seconds: float = 900.0,
        poll_interval_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
        busy_retry_after_seconds: int = 5,
        paused_retry_after_seconds: int = 60,
        jitter_fraction: float = 0.2,
        random: Callable[[], float] = random_module.random,
        clock: Any = None,
        redis_url: str | None = None,
        redis_client: Any = None,
        redis_key_prefix: str = "upload_gate",
        redis_timeout_seconds: float = 0.25,
        redis_max_backoff_seconds: float = 30.0,
        server_id: str | None = None,
        leased_budgets: bool = False,
        slice_ttl_seconds: float = 10.0,
        budget_refill_interval_seconds: float = 0.05,
        start: bool = True,
    ) -> None:
        if source is None:
            source = source_from_url(database_url) if database_url else StaticSource()
        clock = clock or SystemClock()
        self._monotonic_ns: Callable[[], int] = clock.monotonic_ns
        self._wall_ns: Callable[[], int] = clock.wall_ns
        self._lock = threading.Lock()
        self._lock_acquire = self._lock.acquire
        self._lock_release = self._lock.release
        self._states: dict[str, ClientState] = {}
        self._lease_ids = itertools.count(1)
        self._lease_timeout_us = int(lease_timeout_seconds * US_PER_SECOND)
        self.lease_timeout_seconds = lease_timeout_seconds
        self._busy_wait_us = busy_retry_after_seconds * US_PER_SECOND
        self._paused_retry_after_seconds = paused_retry_after_seconds
        self.rejections = Rejections(jitter_fraction, random)
        self.server_id = server_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._fallback_row = fallback_row(fallback_limits)
        self._policies: dict[str, ClientPolicy] = {}
        self._default_policy: ClientPolicy
        self._apply_snapshot(TableSnapshot.from_rows([self._fallback_row], from_fallback=True))
        self._fleet, self._leased = counting_modes(
            self,
            redis_url,
            redis_client,
            leased_budgets=leased_budgets,
            key_prefix=redis_key_prefix,
            timeout_seconds=redis_timeout_seconds,
            max_backoff_seconds=redis_max_backoff_seconds,
            slice_ttl_seconds=slice_ttl_seconds,
            refill_interval_seconds=budget_refill_interval_seconds,
        )
        self._counting = self._leased or self._fleet
        self._refresher = TableRefresher(
            source,
            self._apply_snapshot,
            wall_ns=self._wall_ns,
            poll_interval_seconds=poll_interval_seconds,
            max_backoff_seconds=max_backoff_seconds,
        )
        # A synchronous first load, so a server starts with real limits when it can.
        self._refresher.refresh_now()
        if start:
            self._refresher.start()
            if self._leased is not None:
                self._leased.start()

    # -- deciding ---------------------------------------------------------------------
    def admit(self, client_id: str, size_bytes: int, want_headers: bool = False) -> Decision:
        """Admit or reject one upload of size_bytes (its declared size) for client_id.

        size_bytes must be an integer >= 0: TypeError for a float, bool or text (4.5 bytes
        would leak into the headers and counters), ValueError for a negative size."""
        if size_bytes.__class__ is not int or size_bytes < 0:
            size_bytes = checked_size_bytes(size_bytes)
        counting = self._counting  # Redis mode or leased budgets; None in share mode
        if counting is not None and counting.usable():
            decision = counting.admit(client_id, size_bytes)
            if decision is not None:
                if want_headers:
                    decision.headers()
                return decision
        # acquire/try/finally rather than `with`: measurably cheaper on this path.
        self._lock_acquire()
        try:
            now = self._monotonic_ns() // 1000
            try:
                state = self._states[client_id]
            except KeyError:
                state = self._new_state(client_id)
            if now >= state.expiry_check_us:
                state.expire_due(now)
            policy = state.policy
            rejected = self._pause_decision(state, policy) if policy.pause_configured else None
            if rejected is None:
                limits = policy.share
                # Shadow limits: counted, never enforced (a pause rejects in both worlds).
                in_shadow = policy.shadow is not None and shadow_admits(
                    state, policy.shadow, now, self._wall_ns, size_bytes
                )
                tat = state.tat_us
                if tat < now:
                    tat = now
                interval = limits.interval_us
                cap = limits.max_concurrent_uploads
                bytes_cap = limits.max_bytes_in_flight
                wall = None
                if (
                    (interval is not None and tat - now > limits.tolerance_us)
                    or (cap is not None and state.uploads_in_flight >= cap)
                    or (bytes_cap is not None and state.bytes_in_flight + size_bytes > bytes_cap)
                    or (limits.daily_upload_bytes is not None and not self._fits_today(state, size_bytes))
                ):
                    rejected = self._throttle(state, limits, now, size_bytes)
                    if in_shadow:
                        rejected.shadow_lease = self._shadow_only_lease(state, size_bytes, now)
                else:
                    if interval is not None:
                        tat += interval
                        state.tat_us = tat
                    if limits.daily_upload_bytes is not None:
                        wall = state.day_wall_us
                        state.day_bytes += size_bytes
                    # Take a lease (ClientState.add_lease inlined: this is the hot path).
                    lease = Lease(next(self._lease_ids), state, size_bytes, now + self._lease_timeout_us)
                    state.leases[lease.lease_id] = lease
                    state.uploads_in_flight += 1
                    state.bytes_in_flight += size_bytes
                    if lease.deadline_us < state.expiry_check_us:
                        state.expiry_check_us = lease.deadline_us
                    state.admitted += 1
                    if in_shadow:
                        lease.in_shadow = True
                        take_shadow_slot(state, size_bytes)
                    view = (
                        limits,
                        tat - now,
                        state.uploads_in_flight,
                        state.bytes_in_flight,
                        state.day_bytes,
                        wall,
                    )
        finally:
            self._lock_release()
        decision = Admitted(lease, view) if rejected is None else rejected
        if want_headers:
            decision.headers()  # built here, outside the lock
        return decision

    def release(self, lease: Lease, outcome: str = COMPLETED) -> bool:
        """End an upload: completed / failed / timed_out. False if it had already ended or expired."""
        if outcome is not COMPLETED and outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {outcome!r}")
        state = lease.state
        self._lock_acquire()
        try:
            now = self._monotonic_ns() // 1000
            ended = state.leases.pop(lease.lease_id, None) is not None
            if ended:
                state.uploads_in_flight -= 1
                state.bytes_in_flight -= lease.size_bytes
                if lease.in_shadow:
                    state.end_shadow_part(lease)
                if now >= lease.deadline_us:
                    # Too late: it has timed out, whatever the caller says.
                    state.timed_out += 1
                    state.expire_due(now)
                    ended = False
                elif outcome == COMPLETED:
                    state.completed += 1
                elif outcome == FAILED:
                    state.failed += 1
                else:
                    state.timed_out += 1
        finally:
            self._lock_release()
        if self._fleet is not None:
            self._fleet.release(lease)
        return ended

    renew = renew_lease  # gate.renew(lease) -> bool: a long upload keeps its lease (renewal.py)

    def release_shadow(self, lease: ShadowLease) -> bool:
        """End an upload that only the shadow limits admitted (replays and tests know when it
        would have ended; servers don't, and leave it to the lease timeout)."""
        state = lease.state
        with self._lock:
            ended = state.shadow_only_leases.pop(lease.lease_id, None) is not None
            if ended:
                state.end_shadow_part(lease)
        return ended

    def sweep_expired(self) -> int:
        """Expire every overdue lease now (the hot path only checks the client it touches)."""
        with self._lock:
            now = self._monotonic_ns() // 1000
            return sum(state.expire_due(now) for state in self._states.values() if now >= state.expiry_check_us)

    # -- helpers of the decision path (under the lock) ------------------------------
    def _new_state(self, client_id: str) -> ClientState:
        state = ClientState(client_id, self._policies.get(client_id, self._default_policy))
        self._states[client_id] = state
        return state

    def _shadow_only_lease(self, state: ClientState, size_bytes: int, now: int) -> ShadowLease:
        lease = ShadowLease(next(self._lease_ids), state, size_bytes, now + self._lease_timeout_us)
        state.shadow_only_leases[lease.lease_id] = lease
        take_shadow_slot(state, size_bytes)
        if lease.deadline_us < state.expiry_check_us:
            state.expiry_check_us = lease.deadline_us
        return lease

    def _fits_today(self, state: ClientState, size_bytes: int) -> bool:
        """Whether size_bytes fits in today's quota; reads the wall clock only for this rule."""
        wall = self._wall_ns() // 1000
        state.day_wall_us = wall
        if wall // US_PER_DAY != state.day_index:
            self._roll_day(state, wall)
        return state.day_bytes + size_bytes <= state.policy.share.daily_upload_bytes  # type: ignore[operator]

    @staticmethod
    def _roll_day(state: ClientState, wall_us: int) -> None:
        """Daily bytes start again at 00:00 UTC."""
        day = wall_us // US_PER_DAY
        if day != state.day_index:
            state.day_index = day
            state.day_bytes = 0

    def _pause_decision(self, state: ClientState, policy: ClientPolicy) -> Decision | None:
        wall = self._wall_ns() // 1000
        pause = policy.active_pause(wall)
        if pause is None:
            return None
        limit, reason, resume_us = pause
        if resume_us is None:
            base = self._paused_retry_after_seconds
        else:
            base = max(1, -(-(resume_us - wall) // US_PER_SECOND))
        state.paused += 1
        return self.rejections.paused(limit, reason, base)

    def _throttle(self, state: ClientState, limits: Any, now: int, size_bytes: int) -> Decision:
        wall = None
        if limits.daily_upload_bytes is not None:
            wall = self._wall_ns() // 1000
            self._roll_day(state, wall)
        gap = max(state.tat_us, now) - now
        view = (limits, gap, state.uploads_in_flight, state.bytes_in_flight, state.day_bytes, wall)
        limit, wait_us = binding_limit(*view, size_bytes, self._busy_wait_us)  # type: ignore[misc]
        state.throttled += 1
        return self.rejections.throttled(limit, wait_us, view, state.policy.reduced)

    # -- table reloads ----------------------------------------------------------------
    def _apply_snapshot(self, snapshot: TableSnapshot) -> None:
        policies, default_policy = build_policies(snapshot, self._fallback_row)
        with self._lock:
            self._policies = policies
            self._default_policy = default_policy
            for client_id, state in self._states.items():
                state.policy = policies.get(client_id, default_policy)

    def refill_budgets_now(self) -> int:
        """Leased budgets: one refill round now (as the background thread does); calls made."""
        return 0 if self._leased is None else self._leased.refill_now()

    def refresh_now(self) -> bool:
        """Check the table now (the background thread also does, every poll interval)."""
        return self._refresher.refresh_now()

    # -- reporting --------------------------------------------------------------------
    def snapshot_counters(self, reset: bool = True) -> dict:
        """Per-client counts since the last snapshot, plus what is in flight now (JSON-ready)."""
        with self._lock:
            now = self._monotonic_ns() // 1000
            today = self._wall_ns() // 1000 // US_PER_DAY
            clients = {}
            for client_id, state in list(self._states.items()):
                if now >= state.expiry_check_us:
                    state.expire_due(now)
                counts = state.take_counts(reset)
                if any(counts.values()):
                    clients[client_id] = counts
                if reset and state.is_idle(now, today):
                    del self._states[client_id]  # direct users come and go: forget idle ones
        return {
            "server_id": self.server_id,
            "config_version": self.config_version,
            "live_server_count": self.live_server_count,
            "stale_since": _iso(self.stale_since),
            "mode": self.mode,
            "bad_rows": self.bad_rows,
            "uploads_in_flight": sum(c["uploads_in_flight"] for c in clients.values()),
            "bytes_in_flight": sum(c["bytes_in_flight"] for c in clients.values()),
            "clients": clients,
        }

    def client_config(self, client_id: str) -> dict:
        """The limits this gate applies to client_id (fleet-wide and this server's share)."""
        return self._policies.get(client_id, self._default_policy).describe()

    @property
    def config_version(self) -> int | None:
        """Version of the table in force; None while running on the fallback limits."""
        return self._refresher.version

    @property
    def loaded(self) -> bool:
        return self._refresher.loaded

    @property
    def stale_since(self) -> datetime | None:
        """Since when the table could not be read (None while it can)."""
        stale_us = self._refresher.stale_since_us
        return None if stale_us is None else epoch_us_to_datetime(stale_us)

    @property
    def bad_rows(self) -> list[dict[str, str]]:
        """Rows of the table skipped because they cannot be parsed: client_id, column, problem."""
        return [bad.as_dict() for bad in self._refresher.bad_rows]

    @property
    def live_server_count(self) -> int:
        return self._default_policy.live_server_count

    @property
    def mode(self) -> str:
        """'share', 'redis', 'share (redis unavailable)', 'leased' or 'share (coordinator unavailable)'."""
        if self._leased is not None:
            return "leased" if self._leased.healthy else "share (coordinator unavailable)"
        if self._fleet is None:
            return "share"
        return "redis" if self._fleet.healthy else "share (redis unavailable)"

    @property
    def refresher(self) -> TableRefresher:
        return self._refresher

    def close(self) -> None:
        self._refresher.stop()
        if self._counting is not None:
            self._counting.close()

    def __enter__(self) -> UploadGate:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
