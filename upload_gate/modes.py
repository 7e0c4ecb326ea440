"""Which way a gate counts: its share (the default), in Redis (one call per decision), or
on leased budgets (slices granted by a coordinator in Redis, decided locally)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .fleet import FleetMode
    from .gate import UploadGate
    from .leased import LeasedMode


def counting_modes(
    gate: UploadGate,
    redis_url: str | None,
    redis_client: Any,
    *,
    leased_budgets: bool,
    key_prefix: str,
    timeout_seconds: float,
    max_backoff_seconds: float,
    slice_ttl_seconds: float,
    refill_interval_seconds: float,
) -> tuple[FleetMode | None, LeasedMode | None]:
    """(Redis mode, leased-budget mode): at most one of them; neither means share mode."""
    with_redis = bool(redis_url) or redis_client is not None
    if leased_budgets:
        if not with_redis:
            raise ValueError("leased_budgets needs the coordinator: redis_url or redis_client")
        from .leased import LeasedMode

        leased = LeasedMode(
            gate,
            redis_url,
            client=redis_client,
            key_prefix=key_prefix,
            timeout_seconds=timeout_seconds,
            slice_ttl_seconds=slice_ttl_seconds,
            refill_interval_seconds=refill_interval_seconds,
            max_backoff_seconds=max_backoff_seconds,
        )
        return None, leased
    if with_redis:
        from .fleet import FleetMode

        return FleetMode(
            gate,
            redis_url,
            client=redis_client,
            key_prefix=key_prefix,
            timeout_seconds=timeout_seconds,
            max_backoff_seconds=max_backoff_seconds,
        ), None
    return None, None
