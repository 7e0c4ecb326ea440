"""Per-client counters and leases held in memory by one gate.

All of this is touched under the gate's lock. Leases of a client are kept in a dict in
admission order; since every lease gets the same timeout, that is also deadline order,
so the oldest lease is the next to expire and expiry is checked in O(1) amortised.
"""

from __future__ import annotations

from typing import Any

from .limits import ClientPolicy

COMPLETED = "completed"
FAILED = "failed"
TIMED_OUT = "timed_out"
OUTCOMES = (COMPLETED, FAILED, TIMED_OUT)

NEVER_US = 1 << 62  # "no lease to expire": later than any monotonic time we will see


class Lease:
    """Proof that an upload was admitted; hand it back to `gate.release()` when it ends.

    A lease is live while its client's state holds it: that dict is the one truth, so
    ending a lease twice (release, expiry) is detected without a flag to keep in step.
    """

    __slots__ = ("lease_id", "state", "size_bytes", "deadline_us", "in_shadow")

    def __init__(self, lease_id: int, state: ClientState, size_bytes: int, deadline_us: int) -> None:
        self.lease_id = lease_id
        self.state = state
        self.size_bytes = size_bytes
        self.deadline_us = deadline_us  # monotonic microseconds
        # Whether the shadow limits also admitted it: only then it counts in the shadow world.
        self.in_shadow = False

    @property
    def client_id(self) -> str:
        return self.state.client_id

    @property
    def done(self) -> bool:
        return self.lease_id not in self.state.leases

    def __repr__(self) -> str:
        ended = " ended" if self.done else ""
        return f"<Lease {self.lease_id} {self.client_id!r} {self.size_bytes} bytes{ended}>"


class ShadowLease(Lease):
    """An upload the shadow limits would have admitted but the enforced ones rejected.

    It exists only in the shadow world (no upload happens), so nobody releases it in
    production: it holds its shadow slot until the lease timeout. Replays and tests that
    know when it would have ended hand it to `gate.release_shadow()`.
    """

    __slots__ = ()

    @property
    def done(self) -> bool:
        return self.lease_id not in self.state.shadow_only_leases


class RedisLease(Lease):
    """A lease also held in Redis (fleet-wide mode), under `redis_member`."""

    __slots__ = ("redis_member",)

    def __init__(self, lease_id: int, state: ClientState, size_bytes: int, deadline_us: int, redis_member: str) -> None:
        super().__init__(lease_id, state, size_bytes, deadline_us)
        self.redis_member: str | None = redis_member


class ClientState:
    """One client id's buckets on this server, and its counts since the last snapshot."""

    __slots__ = (
        "client_id",
        "policy",
        "tat_us",
        "leases",
        "uploads_in_flight",
        "bytes_in_flight",
        "day_index",
        "day_bytes",
        "day_wall_us",
        "expiry_check_us",
        "admitted",
        "throttled",
        "paused",
        "completed",
        "failed",
        "timed_out",
        "redis_keys",
        "budget",
        "shadow_tat_us",
        "shadow_uploads_in_flight",
        "shadow_bytes_in_flight",
        "shadow_day_index",
        "shadow_day_bytes",
        "shadow_only_leases",
        "would_have_throttled",
    )

    def __init__(self, client_id: str, policy: ClientPolicy) -> None:
        self.client_id = client_id
        self.policy = policy
        self.tat_us = 0  # GCRA theoretical arrival time, monotonic microseconds
        self.leases: dict[int, Lease] = {}
        self.uploads_in_flight = 0
        self.bytes_in_flight = 0
        self.day_index = -1  # UTC day number (wall microseconds // 86 400 000 000)
        self.day_bytes = 0
        self.day_wall_us = 0  # the wall time read for the latest daily check (for the headers)
        # A lower bound of the oldest lease's deadline: until then nothing can expire.
        self.expiry_check_us = NEVER_US
        self.admitted = 0
        self.throttled = 0
        self.paused = 0
        self.completed = 0
        self.failed = 0
        self.timed_out = 0
        self.redis_keys: tuple[str, ...] | None = None
        self.budget: Any = None  # leased-budget mode: this gate's slice (upload_gate/leased.py)
        # The shadow world: the buckets as enforcing the shadow limits would have left them.
        self.shadow_tat_us = 0
        self.shadow_uploads_in_flight = 0
        self.shadow_bytes_in_flight = 0
        self.shadow_day_index = -1
        self.shadow_day_bytes = 0
        self.shadow_only_leases: dict[int, Lease] = {}
        self.would_have_throttled = 0

    def add_lease(self, lease: Lease) -> None:
        self.leases[lease.lease_id] = lease
        self.uploads_in_flight += 1
        self.bytes_in_flight += lease.size_bytes
        if lease.deadline_us < self.expiry_check_us:
            self.expiry_check_us = lease.deadline_us

    def end_lease(self, lease: Lease) -> None:
        del self.leases[lease.lease_id]
        self.uploads_in_flight -= 1
        self.bytes_in_flight -= lease.size_bytes
        if lease.in_shadow:
            self.end_shadow_part(lease)

    def end_shadow_part(self, lease: Lease) -> None:
        self.shadow_uploads_in_flight -= 1
        self.shadow_bytes_in_flight -= lease.size_bytes

    def expire_due(self, now_us: int) -> int:
        """End every lease whose deadline has passed; returns how many timed out."""
        expired = 0
        leases = self.leases
        while leases:
            oldest = next(iter(leases.values()))
            if oldest.deadline_us > now_us:
                self.expiry_check_us = oldest.deadline_us
                break
            self.end_lease(oldest)
            expired += 1
        else:
            self.expiry_check_us = NEVER_US
        if self.shadow_only_leases:
            self._expire_shadow_only(now_us)
        self.timed_out += expired
        return expired

    def _expire_shadow_only(self, now_us: int) -> None:
        """Shadow-only leases end at their deadline too; they are not counted as timed out."""
        shadow_leases = self.shadow_only_leases
        while shadow_leases:
            oldest = next(iter(shadow_leases.values()))
            if oldest.deadline_us > now_us:
                self.expiry_check_us = min(self.expiry_check_us, oldest.deadline_us)
                return
            del shadow_leases[oldest.lease_id]
            self.end_shadow_part(oldest)

    def take_counts(self, reset: bool) -> dict[str, int]:
        counts = {
            "admitted": self.admitted,
            "throttled": self.throttled,
            "paused": self.paused,
            "completed": self.completed,
            "failed": self.failed,
            "timed_out": self.timed_out,
            "uploads_in_flight": self.uploads_in_flight,
            "bytes_in_flight": self.bytes_in_flight,
        }
        if self.would_have_throttled:  # optional in reports: only clients with shadow limits
            counts["would_have_throttled"] = self.would_have_throttled
        if reset:
            self.would_have_throttled = 0
            self.admitted = self.throttled = self.paused = 0
            self.completed = self.failed = self.timed_out = 0
        return counts

    def is_idle(self, now_us: int, today: int) -> bool:
        """Safe to forget: nothing in flight, bucket full, nothing counted today, nothing unreported."""
        return (
            not self.leases
            and self.budget is None  # a slice held must be given back before forgetting
            and not self.shadow_only_leases
            and self.tat_us <= now_us
            and self.shadow_tat_us <= now_us
            and (self.shadow_day_bytes == 0 or self.shadow_day_index != today)
            and not self.would_have_throttled
            and (self.day_bytes == 0 or self.day_index != today)
            and not (self.admitted or self.throttled or self.paused or self.completed or self.failed or self.timed_out)
        )
