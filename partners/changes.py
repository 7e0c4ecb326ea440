"""Every change to partners, limits and pauses goes through here.

Each function locks what it changes, checks the editor's form is not stale, saves, writes
the audit entry and publishes the shared config table in one transaction: a failure at any
step leaves all three as they were.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from partners import overrides, publisher
from partners.models import (
    LIMIT_FIELDS,
    SHADOW_FIELDS,
    AuditAction,
    AuditEntry,
    FleetSettings,
    Partner,
)

SYSTEM_ACTOR_NAME = "system"
PARTNER_SETTINGS_FIELDS = ("name", "slug", "client_id", "contact_email", "priority")
CEILING_FIELDS = tuple(f"ceiling_{name}" for name in LIMIT_FIELDS)


class StaleEdit(Exception):
    """The object changed after the editor opened the form; nothing was saved."""

    def __init__(self, changed_by: str, changed_at: datetime):
        self.changed_by = changed_by
        self.changed_at = changed_at
        when = timezone.localtime(changed_at).strftime("%Y-%m-%d %H:%M:%S %Z")
        super().__init__(
            f"Changed by {changed_by} at {when} since you opened it. "
            "Nothing was saved: reload to see the change, then edit again."
        )


@dataclass(frozen=True)
class ChangeResult:
    audit_entry: AuditEntry | None
    version: int | None

    @property
    def changed(self) -> bool:
        return self.audit_entry is not None


def _actor_name(actor) -> str:
    return actor.get_username() if actor is not None else SYSTEM_ACTOR_NAME


def _json_value(value):
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _diff(before: dict, after: dict) -> tuple[dict, dict]:
    changed = [name for name in after if before.get(name) != after[name]]
    return (
        {name: _json_value(before.get(name)) for name in changed},
        {name: _json_value(after[name]) for name in changed},
    )


def record(actor, action: str, subject: str, before: dict, after: dict, reason: str,
            partner: Partner | None = None) -> AuditEntry:
    return AuditEntry.objects.create(
        actor=actor,
        actor_name=_actor_name(actor),
        action=action,
        subject=subject,
        partner=partner,
        before=before,
        after=after,
        reason=reason,
    )


def _check_fresh(obj, expected_revision: int | None) -> None:
    if expected_revision is not None and obj.revision != expected_revision:
        raise StaleEdit(_actor_name(obj.changed_by), obj.changed_at)


def _managers_of(partner: Partner) -> list[str]:
    return sorted(partner.managers.values_list("username", flat=True))


def create_partner(actor, values: dict, managers, reason: str) -> Partner:
    with transaction.atomic():
        partner = Partner(**values, changed_by=actor)
        partner.full_clean()
        partner.save()
        partner.managers.set(managers)
        after = {**{k: _json_value(v) for k, v in values.items()}, "managers": _managers_of(partner)}
        record(actor, AuditAction.PARTNER_CREATED, partner.name, {}, after, reason, partner)
        publisher.publish_partner(partner)
    return partner


def change_partner(partner: Partner, actor, values: dict, reason: str,
                   expected_revision: int | None, managers=None,
                   action: str = AuditAction.PARTNER_CHANGED) -> ChangeResult:
    """Apply field values (limits, ceilings, settings) to a partner, audited and published."""
    with transaction.atomic():
        locked = Partner.objects.select_for_update().get(pk=partner.pk)
        _check_fresh(locked, expected_revision)
        previous_client_id = locked.client_id
        before_values = {name: getattr(locked, name) for name in values}
        after_values = dict(values)
        if managers is not None:
            before_values["managers"] = _managers_of(locked)
            after_values["managers"] = sorted(user.get_username() for user in managers)
        before, after = _diff(before_values, after_values)
        if not after:
            return ChangeResult(None, None)
        for name, value in values.items():
            setattr(locked, name, value)
        locked.revision += 1
        locked.changed_at = timezone.now()
        locked.changed_by = actor
        locked.save()
        if managers is not None:
            locked.managers.set(managers)
        entry = record(actor, action, locked.name, before, after, reason, locked)
        version = publisher.publish_partner(locked, previous_client_id=previous_client_id)
    partner.refresh_from_db()
    return ChangeResult(entry, version)


def change_limits(partner: Partner, actor, limits: dict, reason: str,
                  expected_revision: int | None) -> ChangeResult:
    unknown = set(limits) - set(LIMIT_FIELDS)
    if unknown:
        raise ValueError(f"Not limits: {sorted(unknown)}")
    return change_partner(partner, actor, limits, reason, expected_revision,
                          action=AuditAction.LIMITS_CHANGED)


def change_shadow_limits(partner: Partner, actor, shadow: dict, reason: str,
                         expected_revision: int | None) -> ChangeResult:
    """Set or clear shadow values (None clears one): the gates count, never enforce, them."""
    unknown = set(shadow) - set(SHADOW_FIELDS)
    if unknown:
        raise ValueError(f"Not shadow limits: {sorted(unknown)}")
    return change_partner(partner, actor, shadow, reason, expected_revision,
                          action=AuditAction.SHADOW_CHANGED)


def pause_partner(partner: Partner, actor, reason: str, resume_at: datetime | None) -> ChangeResult:
    with transaction.atomic():
        locked = Partner.objects.select_for_update().get(pk=partner.pk)
        before = _pause_state(locked)
        locked.paused = True
        locked.pause_reason = reason
        locked.paused_at = timezone.now()
        locked.paused_by = actor
        locked.resume_at = resume_at
        locked.save()
        # A pause with a resume time is an expiring override: reminder email, audited end.
        overrides.close_pause_overrides(locked, actor, due=False)
        if resume_at is not None:
            overrides.open_pause_override(locked, actor, reason, resume_at)
        entry = record(actor, AuditAction.PARTNER_PAUSED, locked.name, before,
                        _pause_state(locked), reason, locked)
        version = publisher.publish_partner(locked)
    partner.refresh_from_db()
    return ChangeResult(entry, version)


def resume_partner(partner: Partner, actor, reason: str = "",
                   due_by: datetime | None = None) -> ChangeResult:
    """Resume imports. With due_by, only a pause whose resume time is at or before it."""
    with transaction.atomic():
        locked = Partner.objects.select_for_update().get(pk=partner.pk)
        if not locked.paused or not _is_due(locked.resume_at, due_by):
            return ChangeResult(None, None)
        before = _pause_state(locked)
        locked.paused = False
        locked.pause_reason = ""
        locked.paused_at = None
        locked.paused_by = None
        locked.resume_at = None
        locked.save()
        ended = overrides.close_pause_overrides(locked, actor, due=due_by is not None)
        if ended is not None:
            reason = f"Pause {ended.label()} ({ended.reason}) ended" + (f": {reason}" if reason else ".")
        entry = record(actor, AuditAction.PARTNER_RESUMED, locked.name, before,
                        _pause_state(locked), reason, locked)
        version = publisher.publish_partner(locked)
    partner.refresh_from_db()
    return ChangeResult(entry, version)


def _is_due(resume_at: datetime | None, due_by: datetime | None) -> bool:
    # Checked under the row lock: the pause may have been renewed since it was listed.
    return due_by is None or (resume_at is not None and resume_at <= due_by)


def _pause_state(partner: Partner) -> dict:
    return {
        "paused": partner.paused,
        "pause_reason": partner.pause_reason,
        "resume_at": _json_value(partner.resume_at),
    }


def pause_all_partners(actor, reason: str, resume_at: datetime | None) -> ChangeResult:
    with transaction.atomic():
        fleet = FleetSettings.load(for_update=True)
        before = _global_pause_state(fleet)
        fleet.all_partners_paused = True
        fleet.all_partners_pause_reason = reason
        fleet.all_partners_paused_at = timezone.now()
        fleet.all_partners_paused_by = actor
        fleet.all_partners_resume_at = resume_at
        fleet.save()
        overrides.close_pause_overrides(None, actor, due=False)
        if resume_at is not None:
            overrides.open_pause_override(None, actor, reason, resume_at)
        entry = record(actor, AuditAction.ALL_PAUSED, "all partners", before,
                        _global_pause_state(fleet), reason)
        version = publisher.publish_defaults(fleet)
    return ChangeResult(entry, version)


def resume_all_partners(actor, reason: str = "", due_by: datetime | None = None) -> ChangeResult:
    with transaction.atomic():
        fleet = FleetSettings.load(for_update=True)
        if not fleet.all_partners_paused or not _is_due(fleet.all_partners_resume_at, due_by):
            return ChangeResult(None, None)
        before = _global_pause_state(fleet)
        fleet.all_partners_paused = False
        fleet.all_partners_pause_reason = ""
        fleet.all_partners_paused_at = None
        fleet.all_partners_paused_by = None
        fleet.all_partners_resume_at = None
        fleet.save()
        ended = overrides.close_pause_overrides(None, actor, due=due_by is not None)
        if ended is not None:
            reason = f"Pause {ended.label()} ({ended.reason}) ended" + (f": {reason}" if reason else ".")
        entry = record(actor, AuditAction.ALL_RESUMED, "all partners", before,
                        _global_pause_state(fleet), reason)
        version = publisher.publish_defaults(fleet)
    return ChangeResult(entry, version)


def _global_pause_state(fleet: FleetSettings) -> dict:
    return {
        "all_partners_paused": fleet.all_partners_paused,
        "pause_reason": fleet.all_partners_pause_reason,
        "resume_at": _json_value(fleet.all_partners_resume_at),
    }


def _save_fleet_settings(fleet: FleetSettings, values: dict, actor) -> None:
    """Store ops' new fleet-wide values; the revision makes a form opened before stale."""
    for name, value in values.items():
        setattr(fleet, name, value)
    fleet.revision += 1
    fleet.changed_at = timezone.now()
    fleet.changed_by = actor
    fleet.save()


def change_default_limits(actor, limits: dict, reason: str,
                          expected_revision: int | None) -> ChangeResult:
    with transaction.atomic():
        fleet = FleetSettings.load(for_update=True)
        _check_fresh(fleet, expected_revision)
        before, after = _diff(fleet.limit_values(), limits)
        if not after:
            return ChangeResult(None, None)
        _save_fleet_settings(fleet, limits, actor)
        entry = record(actor, AuditAction.DEFAULTS_CHANGED, "defaults (*)", before, after, reason)
        version = publisher.publish_defaults(fleet)
    return ChangeResult(entry, version)


def resume_due_pauses(now: datetime | None = None) -> int:
    """Resume, as the system, every pause whose resume time has come. Returns how many."""
    now = now or timezone.now()
    resumed = 0
    reason = "Scheduled resume time reached."
    for partner in Partner.objects.filter(paused=True, resume_at__lte=now):
        resumed += resume_partner(partner, None, reason, due_by=now).changed
    resumed += resume_all_partners(None, reason, due_by=now).changed
    return resumed



# Load-coupled limits (partners.load_control): ops' settings, and the system's steps.

LOAD_CONTROL_FIELDS = (
    "load_control_enabled",
    "load_cpu_target_percent",
    "load_window_seconds",
    "load_reserved_share_percent",
    "load_decrease_factor",
    "load_increase_step_percent",
    "load_server_upload_capacity",
)


def change_load_control_settings(actor, values: dict, reason: str,
                                 expected_revision: int | None) -> ChangeResult:
    """Ops change the controller's settings. Nothing is published: the schedule applies them
    at its next run (and restores the configured limits when they are turned off)."""
    unknown = set(values) - set(LOAD_CONTROL_FIELDS)
    if unknown:
        raise ValueError(f"Not load-control settings: {sorted(unknown)}")
    with transaction.atomic():
        fleet = FleetSettings.load(for_update=True)
        _check_fresh(fleet, expected_revision)
        before, after = _diff({name: getattr(fleet, name) for name in values}, values)
        if not after:
            return ChangeResult(None, None)
        _save_fleet_settings(fleet, values, actor)
        entry = record(actor, AuditAction.LOAD_CONTROL_CHANGED, "load-coupled limits", before, after, reason)
    return ChangeResult(entry, None)


def _effective_state(partner: Partner) -> dict:
    return {
        "effective_max_concurrent_uploads": partner.effective_value("max_concurrent_uploads"),
        "effective_max_bytes_in_flight": partner.effective_value("max_bytes_in_flight"),
    }


def set_effective_limits(partner: Partner, max_concurrent_uploads: int | None, max_bytes_in_flight: int | None,
                         reason: str, changed_at: datetime | None = None) -> ChangeResult:
    """The system lowers (or restores) a partner's limits in force, audited as "system" and
    published in one transaction. None, or a value at or above the configured one, means
    the configured limit. The partner's revision is not bumped: an editor's open form of
    the configured limits is not stale because of this."""
    with transaction.atomic():
        locked = Partner.objects.select_for_update().get(pk=partner.pk)
        before_state = _effective_state(locked)
        locked.effective_max_concurrent_uploads = _below_configured(
            max_concurrent_uploads, locked.max_concurrent_uploads)
        locked.effective_max_bytes_in_flight = _below_configured(max_bytes_in_flight, locked.max_bytes_in_flight)
        before, after = _diff(before_state, _effective_state(locked))
        if not after:
            return ChangeResult(None, None)
        locked.effective_reason = reason if locked.reduced_limits() else ""
        locked.effective_changed_at = changed_at or timezone.now()
        locked.save(update_fields=["effective_max_concurrent_uploads", "effective_max_bytes_in_flight",
                                   "effective_reason", "effective_changed_at"])
        entry = record(None, AuditAction.EFFECTIVE_LIMITS_CHANGED, locked.name, before, after,
                       reason or "configured limits restored", locked)
        version = publisher.publish_partner(locked)
    partner.refresh_from_db()
    return ChangeResult(entry, version)


def _below_configured(effective: int | None, configured: int | None) -> int | None:
    if effective is None or configured is None or effective >= configured:
        return None
    return effective
