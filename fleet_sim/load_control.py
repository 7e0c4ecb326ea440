"""Load-coupled limits: the controller that shrinks and regrows bulk partners' limits.

Pure Python on purpose (standard library only): the dashboard's schedule
(fleet.load_coupling) and the simulated fleet (fleet_sim.strategies) run this very code.

One call of `control()` is one tick. Given the fleet CPU samples of the last window it:
- decreases multiplicatively (× decrease_factor) every bulk partner's effective
  max_concurrent_uploads / max_bytes_in_flight while every sample of a full window is above
  the CPU target;
- increases additively (+ increase_step_percent of the configured value) while every sample
  of a full window is below target − hysteresis_percent;
- holds otherwise (the hysteresis band), and holds a partner for `hold_seconds` after any
  change, so a steady overload gives at most 3600 / hold_seconds changes an hour, and a
  change is judged on samples taken after it;
- never goes above the configured limits, and caps bulk partners together at
  (100 − reserved_share_percent) % of the uploads the fleet can carry, so direct users and
  interactive partners keep their share.
Limits that are not configured (None) stay None: there is nothing to shrink from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

REASON_CONFIGURED = ""
REASON_OVERLOAD = "fleet CPU above {target:.0f} % for {window:.0f} s: × {factor:g}"
REASON_RECOVERY = "fleet CPU below {floor:.0f} % for {window:.0f} s: growing back"
REASON_RESERVED = "capped so bulk partners keep within {bulk:.0f} % of fleet capacity"

TREND_OVERLOAD = "overload"
TREND_UNDERLOAD = "underload"
TREND_STEADY = "steady"
TREND_UNKNOWN = "not enough samples"


@dataclass(frozen=True)
class ControlSettings:
    cpu_target_percent: float = 70.0
    window_seconds: float = 300.0
    reserved_share_percent: float = 30.0
    decrease_factor: float = 0.7
    increase_step_percent: float = 10.0
    hysteresis_percent: float = 10.0
    hold_seconds: float = 300.0


@dataclass(frozen=True)
class PartnerLimits:
    """One bulk partner: configured limits, the effective ones in force, and when they changed."""

    client_id: str
    configured_uploads: int | None
    configured_bytes: int | None
    effective_uploads: int | None
    effective_bytes: int | None
    changed_at_seconds: float | None = None
    reason: str = REASON_CONFIGURED

    @property
    def reduced(self) -> bool:
        return _below(self.effective_uploads, self.configured_uploads) or _below(
            self.effective_bytes, self.configured_bytes
        )


@dataclass(frozen=True)
class Tick:
    trend: str
    partners: tuple[PartnerLimits, ...]  # every partner, new values
    changed: tuple[PartnerLimits, ...]  # only those whose effective values changed


def _below(effective: int | None, configured: int | None) -> bool:
    return configured is not None and effective is not None and effective < configured


def cpu_trend(samples: Sequence[tuple[float, float]], now_seconds: float, settings: ControlSettings) -> str:
    """overload / underload / steady over the window ending now; unknown if it is not covered.

    samples: (at_seconds, fleet CPU percent). The window counts as covered when the oldest
    sample inside it is no later than a tenth of the window after its start.
    """
    start = now_seconds - settings.window_seconds
    recent = [cpu for at, cpu in samples if start <= at <= now_seconds]
    first = min((at for at, _ in samples if start <= at <= now_seconds), default=None)
    if not recent or first is None or first > start + settings.window_seconds / 10:
        return TREND_UNKNOWN
    if min(recent) > settings.cpu_target_percent:
        return TREND_OVERLOAD
    if max(recent) < settings.cpu_target_percent - settings.hysteresis_percent:
        return TREND_UNDERLOAD
    return TREND_STEADY


def bulk_ceilings(
    partners: Sequence[PartnerLimits], fleet_upload_capacity: int | None, settings: ControlSettings
) -> dict[str, int | None]:
    """Each partner's concurrency ceiling: configured, scaled down in proportion when the
    configured limits together exceed the bulk share of what the fleet can carry."""
    ceilings = {p.client_id: p.configured_uploads for p in partners}
    configured = [p.configured_uploads for p in partners if p.configured_uploads is not None]
    if fleet_upload_capacity is None or not configured:
        return ceilings
    bulk_uploads = fleet_upload_capacity * (100.0 - settings.reserved_share_percent) / 100.0
    total = sum(configured)
    if total <= bulk_uploads:
        return ceilings
    for p in partners:
        if p.configured_uploads is not None:
            ceilings[p.client_id] = max(1, math.floor(p.configured_uploads * bulk_uploads / total))
    return ceilings


def control(
    samples: Sequence[tuple[float, float]],
    now_seconds: float,
    partners: Sequence[PartnerLimits],
    settings: ControlSettings,
    fleet_upload_capacity: int | None = None,
) -> Tick:
    """One tick of the controller (see the module docstring)."""
    trend = cpu_trend(samples, now_seconds, settings)
    ceilings = bulk_ceilings(partners, fleet_upload_capacity, settings)
    result, changed = [], []
    for partner in partners:
        updated = _step(partner, trend, ceilings[partner.client_id], now_seconds, settings)
        result.append(updated)
        if (updated.effective_uploads, updated.effective_bytes) != (partner.effective_uploads, partner.effective_bytes):
            changed.append(updated)
    return Tick(trend, tuple(result), tuple(changed))


def _step(
    partner: PartnerLimits, trend: str, ceiling: int | None, now_seconds: float, settings: ControlSettings
) -> PartnerLimits:
    uploads = _current(partner.effective_uploads, partner.configured_uploads)
    bytes_ = _current(partner.effective_bytes, partner.configured_bytes)
    reason = partner.reason if partner.reduced else REASON_CONFIGURED
    held = partner.changed_at_seconds is not None and now_seconds - partner.changed_at_seconds < settings.hold_seconds
    if not held and trend == TREND_OVERLOAD:
        uploads, bytes_ = _decrease(uploads, settings), _decrease(bytes_, settings)
        reason = REASON_OVERLOAD.format(
            target=settings.cpu_target_percent, window=settings.window_seconds, factor=settings.decrease_factor
        )
    elif not held and trend == TREND_UNDERLOAD and partner.reduced:
        uploads = _increase(uploads, partner.configured_uploads, settings)
        bytes_ = _increase(bytes_, partner.configured_bytes, settings)
        reason = REASON_RECOVERY.format(
            floor=settings.cpu_target_percent - settings.hysteresis_percent, window=settings.window_seconds
        )
    if ceiling is not None and uploads is not None and uploads > ceiling:
        # The reserved share is not a trend: it applies at once, held or not.
        uploads = ceiling
        reason = REASON_RESERVED.format(bulk=100.0 - settings.reserved_share_percent)
    updated = replace(partner, effective_uploads=uploads, effective_bytes=bytes_)
    if (uploads, bytes_) == (partner.effective_uploads, partner.effective_bytes):
        return partner if partner.reduced or not partner.reason else replace(partner, reason=REASON_CONFIGURED)
    if not updated.reduced:
        reason = REASON_CONFIGURED
    return replace(updated, changed_at_seconds=now_seconds, reason=reason)


def _current(effective: int | None, configured: int | None) -> int | None:
    if configured is None:
        return None
    return configured if effective is None else min(effective, configured)


def _decrease(value: int | None, settings: ControlSettings) -> int | None:
    if value is None:
        return None
    return max(1, math.floor(value * settings.decrease_factor))


def _increase(value: int | None, configured: int | None, settings: ControlSettings) -> int | None:
    if value is None or configured is None:
        return value
    step = max(1, math.ceil(configured * settings.increase_step_percent / 100.0))
    return min(configured, value + step)
