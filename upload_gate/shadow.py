"""Shadow limits: evaluated on every admit, counted as "would have throttled", never enforced.

The shadow world keeps its own buckets (GCRA, day bytes, uploads and bytes in flight), as
enforcing the shadow limits would have left them, so the count equals what enforcement of
those values would have rejected on the same request sequence. An upload counts in the
shadow world only if the shadow limits admitted it (Lease.in_shadow, or a ShadowLease when
only the shadow limits admitted it). Runs under the gate's lock, like the rest of admit.
"""

from __future__ import annotations

from collections.abc import Callable

from .limits import US_PER_DAY, Limits
from .state import ClientState


def shadow_admits(state: ClientState, limits: Limits, now_us: int, wall_ns: Callable[[], int], size_bytes: int) -> bool:
    """Whether the shadow limits admit this upload; takes its shadow rate and day bytes if so."""
    tat = state.shadow_tat_us
    if tat < now_us:
        tat = now_us
    interval = limits.interval_us
    cap = limits.max_concurrent_uploads
    bytes_cap = limits.max_bytes_in_flight
    daily = limits.daily_upload_bytes
    if daily is not None:
        day = wall_ns() // 1000 // US_PER_DAY  # daily bytes start again at 00:00 UTC
        if day != state.shadow_day_index:
            state.shadow_day_index = day
            state.shadow_day_bytes = 0
    if (
        (interval is not None and tat - now_us > limits.tolerance_us)
        or (cap is not None and state.shadow_uploads_in_flight >= cap)
        or (bytes_cap is not None and state.shadow_bytes_in_flight + size_bytes > bytes_cap)
        or (daily is not None and state.shadow_day_bytes + size_bytes > daily)
    ):
        state.would_have_throttled += 1
        return False
    if interval is not None:
        state.shadow_tat_us = tat + interval
    if daily is not None:
        state.shadow_day_bytes += size_bytes
    return True


def take_shadow_slot(state: ClientState, size_bytes: int) -> None:
    state.shadow_uploads_in_flight += 1
    state.shadow_bytes_in_flight += size_bytes
