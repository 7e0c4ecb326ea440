"""Fleet-wide mode: exact counting in Redis, falling back to shares when Redis is away.

Pause checks and lease bookkeeping stay local (the gate's lock); the counting itself is
one EVALSHA per admit and one per release, made outside the lock so a slow Redis never
blocks other uploads. When a call fails the gate decides on its local share until a
backoff (1 s, doubling, capped) has passed, then tries Redis again. When it answers
again, releases that could not reach it are replayed (a bounded queue), and the uploads
this server still has in flight, including those admitted locally meanwhile, are
re-registered (a Redis restarted without persistence has forgotten them).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from .decision import Admitted, Decision
from .limits import RATE_RULES_IN_ORDER, US_PER_DAY, US_PER_SECOND
from .redis_counts import RedisCounts
from .rules import RATE_BLOCKED_WAIT_US
from .state import Lease, RedisLease

if TYPE_CHECKING:
    from .gate import UploadGate
    from .state import ClientState

log = logging.getLogger("upload_gate")


class FleetMode:
    def __init__(
        self,
        gate: UploadGate,
        redis_url: str | None,
        *,
        client: Any = None,
        key_prefix: str = "upload_gate",
        timeout_seconds: float = 0.25,
        min_backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
    ) -> None:
        self._gate = gate
        self._counts = RedisCounts(redis_url, client=client, key_prefix=key_prefix, timeout_seconds=timeout_seconds)
        self._health_lock = threading.Lock()
        self._recovery_lock = threading.Lock()
        self.healthy = True
        self.down_since_us: int | None = None
        self.last_error: str | None = None
        self._min_backoff_us = int(min_backoff_seconds * US_PER_SECOND)
        self._max_backoff_us = int(max_backoff_seconds * US_PER_SECOND)
        self._backoff_us = self._min_backoff_us
        self._retry_at_us = 0
        self._pending_releases: deque[tuple[tuple[str, ...], str]] = deque(maxlen=100_000)
        # lease id -> Redis member, for leases admitted locally and registered at recovery.
        self._restored_members: dict[int, str] = {}

    def usable(self) -> bool:
        """Healthy; or the backoff has passed and Redis took back what happened meanwhile."""
        if self.healthy:
            return True
        if self._gate._monotonic_ns() // 1000 < self._retry_at_us:
            return False
        return self._recover()

    def _recover(self) -> bool:
        """Replay missed releases, re-register uploads in flight, then count in Redis again.

        Done before the first fleet-wide decision, so that decision already sees them. One
        thread recovers; others keep deciding locally meanwhile.
        """
        if not self._recovery_lock.acquire(blocking=False):
            return False
        try:
            self._replay_pending_releases()
            for keys, leases in self._leases_in_flight():
                self._counts.restore(keys, leases, keep_ms=self._gate._lease_timeout_us // 1000 + 60_000)
        except self._counts.errors as exc:
            self._mark_down(exc)
            return False
        finally:
            self._recovery_lock.release()
        with self._health_lock:
            self.healthy = True
            self.down_since_us = None
            self.last_error = None
            self._backoff_us = self._min_backoff_us
        log.warning("Redis reachable again, counting fleet-wide")
        return True

    def admit(self, client_id: str, size_bytes: int) -> Decision | None:
        """A fleet-wide decision, or None when Redis failed (the caller decides locally)."""
        gate = self._gate
        with gate._lock:
            state = self._state(client_id)
            policy = state.policy
            if policy.pause_configured:
                paused = gate._pause_decision(state, policy)
                if paused is not None:
                    return paused
            keys = state.redis_keys
            lease_id = next(gate._lease_ids)
        limits = policy.fleet
        wall = gate._wall_ns() // 1000
        member = f"{gate.server_id}:{lease_id}"
        try:
            result = self._counts.admit(
                keys,  # type: ignore[arg-type]
                limits,
                wall_us=wall,
                size_bytes=size_bytes,
                member=member,
                deadline_us=wall + gate._lease_timeout_us,
                busy_wait_us=gate._busy_wait_us,
                to_midnight_us=US_PER_DAY - wall % US_PER_DAY,
                rate_blocked_wait_us=RATE_BLOCKED_WAIT_US,
                day_index=wall // US_PER_DAY,
            )
        except self._counts.errors as exc:
            self._mark_down(exc)
            return None
        view = (
            limits,
            result.gap_us,
            result.uploads_in_flight,
            result.bytes_in_flight,
            result.day_bytes,
            wall,
        )
        if not result.admitted:
            with gate._lock:
                state = self._state(client_id)
                state.throttled += 1
            return gate.rejections.throttled(
                RATE_RULES_IN_ORDER[result.limit_index - 1], result.wait_us, view, state.policy.reduced
            )
        lease = self._record_lease(client_id, lease_id, size_bytes, member, wall)
        return Admitted(lease, view)

    def _state(self, client_id: str) -> ClientState:
        """The client's local state (under the gate's lock), with overdue leases expired."""
        gate = self._gate
        state = gate._states.get(client_id) or gate._new_state(client_id)
        now = gate._monotonic_ns() // 1000
        if now >= state.expiry_check_us:
            state.expire_due(now)
        if state.redis_keys is None:
            state.redis_keys = self._counts.client_keys(client_id)
        return state

    def _record_lease(self, client_id: str, lease_id: int, size_bytes: int, member: str, wall_us: int) -> RedisLease:
        """Keep a local copy of the lease: for this server's report and for share fallback."""
        gate = self._gate
        with gate._lock:
            # Looked up again: a snapshot may have forgotten an idle state meanwhile.
            state = self._state(client_id)
            now = gate._monotonic_ns() // 1000
            lease = RedisLease(lease_id, state, size_bytes, now + gate._lease_timeout_us, member)
            state.add_lease(lease)
            state.admitted += 1
            if state.policy.share.daily_upload_bytes is not None:
                gate._roll_day(state, wall_us)
                state.day_bytes += size_bytes
        return lease

    def release(self, lease: Lease) -> None:
        """Drop the lease from Redis once (even a timed-out one: it frees the slot sooner)."""
        if type(lease) is RedisLease:
            with self._gate._lock:
                member, lease.redis_member = lease.redis_member, None
        else:
            member = self._restored_members.pop(lease.lease_id, None)
        keys = lease.state.redis_keys
        if member is None or keys is None:
            return
        if not self.healthy:
            self._pending_releases.append((keys, member))  # replayed by _recover()
            return
        try:
            self._counts.release(keys, member)
        except self._counts.errors as exc:
            self._pending_releases.append((keys, member))
            self._mark_down(exc)

    def renew(self, lease: Lease) -> None:
        """Move the lease's deadline in Redis too, so other servers keep counting it."""
        member = getattr(lease, "redis_member", None) or self._restored_members.get(lease.lease_id)
        keys = lease.state.redis_keys
        if member is None or keys is None or not self.healthy:
            return  # after an outage, recovery re-registers it with its current deadline
        gate = self._gate
        deadline_wall_us = gate._wall_ns() // 1000 + lease.deadline_us - gate._monotonic_ns() // 1000
        try:
            self._counts.renew(keys, member, deadline_wall_us, keep_ms=gate._lease_timeout_us // 1000 + 60_000)
        except self._counts.errors as exc:
            self._mark_down(exc)

    def _mark_down(self, exc: BaseException) -> None:
        now = self._gate._monotonic_ns() // 1000
        with self._health_lock:
            self.last_error = f"{type(exc).__name__}: {exc}"
            if self.healthy:
                self.healthy = False
                self.down_since_us = self._gate._wall_ns() // 1000
                self._backoff_us = self._min_backoff_us
                log.warning("Redis unreachable, enforcing local shares: %s", self.last_error)
            else:
                self._backoff_us = min(self._max_backoff_us, self._backoff_us * 2)
            self._retry_at_us = now + self._backoff_us

    def _replay_pending_releases(self) -> None:
        """Raises the Redis error on failure; what was not replayed stays queued."""
        while self._pending_releases:
            try:
                keys, member = self._pending_releases.popleft()
            except IndexError:
                return
            try:
                self._counts.release(keys, member)
            except self._counts.errors:
                self._pending_releases.appendleft((keys, member))
                raise

    def _leases_in_flight(self) -> list[tuple[tuple[str, ...], list[tuple[str, int, int]]]]:
        """(keys, [(member, deadline wall us, size)]) per client with uploads in flight here."""
        gate = self._gate
        batches = []
        with gate._lock:
            now = gate._monotonic_ns() // 1000
            wall = gate._wall_ns() // 1000
            restored: dict[int, str] = {}
            for state in gate._states.values():
                if not state.leases:
                    continue
                if state.redis_keys is None:
                    state.redis_keys = self._counts.client_keys(state.client_id)
                entries = []
                for lease in state.leases.values():
                    member = getattr(lease, "redis_member", None)
                    if member is None:
                        member = restored[lease.lease_id] = f"{gate.server_id}:{lease.lease_id}"
                    entries.append((member, wall + lease.deadline_us - now, lease.size_bytes))
                batches.append((state.redis_keys, entries))
            self._restored_members = restored
        return batches

    def close(self) -> None:
        self._counts.close()
