"""Load-coupled limits, each minute: fleet CPU (monitoring) → the controller → bulk partners'
limits in force (partners.changes.set_effective_limits, audited and published).

The controller itself is fleet_sim.load_control, the same code the simulated fleet runs in
bench/incident.py; fleet.apps schedules this.
"""

from datetime import datetime, timedelta

from django.utils import timezone

from core.bounds import INT32_MAX
from fleet_sim.load_control import ControlSettings, PartnerLimits, Tick, control
from monitoring import metrics, queries
from monitoring.models import UploadServer
from partners import changes
from partners.models import FleetSettings, Partner, Priority

REASON_TURNED_OFF = "load-coupled limits turned off: configured limits restored"


def fleet_cpu_samples(since: datetime, until: datetime) -> list[tuple[float, float]]:
    """(minute start in epoch seconds, fleet CPU %) for the rolled-up minutes in [since, until)."""
    return sorted((minute.timestamp(), cpu) for minute, cpu in queries.fleet_cpu_minutes(since, until).items())


def control_settings(fleet: FleetSettings) -> ControlSettings:
    # Hold a partner for one window after a change, so each step is judged on a window of
    # samples taken after the previous one: at most 3600 / window changes an hour. A window
    # stored on SQLite before the form bounded it (2**40 s reaches before year 1) is read as
    # the longest one the form allows, so the controller keeps running.
    window_seconds = min(fleet.load_window_seconds, INT32_MAX)
    return ControlSettings(
        cpu_target_percent=fleet.load_cpu_target_percent,
        window_seconds=window_seconds,
        reserved_share_percent=fleet.load_reserved_share_percent,
        decrease_factor=fleet.load_decrease_factor,
        increase_step_percent=fleet.load_increase_step_percent,
        hold_seconds=window_seconds,
    )


def _limits_of(partner: Partner) -> PartnerLimits:
    changed = partner.effective_changed_at.timestamp() if partner.effective_changed_at else None
    return PartnerLimits(
        partner.client_id,
        partner.max_concurrent_uploads,
        partner.max_bytes_in_flight,
        partner.effective_value("max_concurrent_uploads"),
        partner.effective_value("max_bytes_in_flight"),
        changed,
        partner.effective_reason,
    )


def run(now: datetime | None = None) -> Tick | None:
    """One step for every bulk partner; None when load-coupled limits are off."""
    now = now or timezone.now()
    fleet = FleetSettings.load()
    partners = {p.client_id: p for p in Partner.objects.filter(priority=Priority.BULK)}
    if not fleet.load_control_enabled:
        for partner in Partner.objects.all():
            if partner.reduced_limits():
                changes.set_effective_limits(partner, None, None, REASON_TURNED_OFF, now)
        return None
    settings = control_settings(fleet)
    minute = metrics.bucket_start(now, metrics.MINUTE_SECONDS)
    samples = fleet_cpu_samples(minute - timedelta(seconds=settings.window_seconds), minute)
    capacity = UploadServer.live_count(now) * fleet.load_server_upload_capacity
    tick = control(
        samples,
        minute.timestamp(),
        [_limits_of(p) for p in partners.values()],
        settings,
        fleet_upload_capacity=capacity,
    )
    for new in tick.changed:
        changes.set_effective_limits(
            partners[new.client_id], new.effective_uploads, new.effective_bytes, new.reason, minute
        )
    return tick
