"""Renewing a lease: a long upload that is still going keeps its slot past the lease timeout.

The sidecar's workers call it (POST /v1/renew) for uploads that outlast the timeout; a lease
that was not renewed in time has ended, and its slot may already have gone to another
upload, so a late renewal fails instead of taking it back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .gate import UploadGate
    from .state import Lease


def renew_lease(gate: UploadGate, lease: Lease) -> bool:
    """Give the lease a deadline one lease timeout from now; False (nothing changes) when it
    had already ended or expired."""
    state = lease.state
    with gate._lock:
        now = gate._monotonic_ns() // 1000
        if state.leases.get(lease.lease_id) is not lease:
            return False
        if now >= lease.deadline_us:
            state.expire_due(now)
            return False
        # Leases are kept in deadline order (state.py); the renewed one now has the latest
        # deadline of all, so it moves to the end, and expiry_check_us stays a lower bound.
        del state.leases[lease.lease_id]
        lease.deadline_us = now + gate._lease_timeout_us
        state.leases[lease.lease_id] = lease
    if gate._fleet is not None:
        gate._fleet.renew(lease)  # other servers keep counting it in Redis
    return True
