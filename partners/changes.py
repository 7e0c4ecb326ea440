"""Every change to partners, limits, pauses and the defaults goes through here.

Each function locks what it changes, checks the editor's form is not stale, saves, writes the
audit entry and publishes the shared config table in one transaction: a failure at any step
leaves all three as they were.

A pause is an Override of kind "pause" about one partner, or about every partner (partner
None); both go through pause() and resume(), under the row lock of what they pause (the
partner's row, or the fleet settings' row for all partners).
"""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from core import audit
from core.audit import NOTHING_CHANGED, ChangeResult
from core.units import format_bytes_exact
from partners import publisher
from partners.models import (
    BYTE_LIMIT_FIELDS,
    LIMIT_FIELDS,
    LOAD_CONTROL_FIELDS,
    NOT_PAUSED,
    SHADOW_FIELDS,
    FleetSettings,
    Override,
    OverrideKind,
    OverrideState,
    Partner,
    PartnerAudit,
)


def _managers_of(partner: Partner) -> list[str]:
    return sorted(partner.managers.values_list("username", flat=True))


def create_partner(actor, values: dict, managers, reason: str) -> Partner:
    with transaction.atomic():
        partner = Partner(**values, changed_by=actor)
        partner.full_clean()
        partner.save()
        partner.managers.set(managers)
        after = {name: audit.json_value(value) for name, value in values.items()}
        after["managers"] = _managers_of(partner)
        audit.record(actor, PartnerAudit.PARTNER_CREATED, partner.name, {}, after, reason, partner)
        publisher.publish_partner(partner)
    return partner


def _limit_text(name: str, value: int | None) -> str:
    if value is None:
        return "no limit"
    return format_bytes_exact(value) if name in BYTE_LIMIT_FIELDS else str(value)


def cap_at_ceilings(partner: Partner, values: dict) -> tuple[dict, str]:
    """The limits among values with each one above the partner's ceiling (no limit is above
    any ceiling) lowered to the ceiling, and a sentence for the audit entry saying which."""
    capped, notes = dict(values), []
    for name, value in values.items():
        ceiling = partner.ceilings().get(name) if name in LIMIT_FIELDS else None
        if ceiling is not None and (value is None or value > ceiling):
            capped[name] = ceiling
            notes.append(f"{name} {_limit_text(name, value)} → {_limit_text(name, ceiling)}")
    return capped, (f"Held at the ceiling set by ops: {', '.join(notes)}." if notes else "")


def change_partner(
    partner: Partner,
    actor,
    values: dict,
    reason: str,
    expected_revision: int | None,
    managers=None,
    action: str = PartnerAudit.PARTNER_CHANGED,
    within_ceilings: bool = False,
) -> ChangeResult:
    """Apply field values (limits, ceilings, settings) to a partner, audited and published.

    within_ceilings: limits above the partner's ceilings as they are now (under the lock) are
    set to the ceiling instead, and the audit entry says so (overrides ending, what-ifs)."""
    with transaction.atomic():
        locked = Partner.objects.select_for_update().get(pk=partner.pk)
        audit.check_fresh(locked, expected_revision)
        if within_ceilings:
            values, note = cap_at_ceilings(locked, values)
            reason = f"{reason} {note}".strip() if note else reason
        previous_client_id = locked.client_id
        before_values = {name: getattr(locked, name) for name in values}
        after_values = dict(values)
        if managers is not None:
            before_values["managers"] = _managers_of(locked)
            after_values["managers"] = sorted(user.get_username() for user in managers)
        before, after = audit.diff(before_values, after_values)
        if not after:
            return NOTHING_CHANGED
        for name, value in values.items():
            setattr(locked, name, value)
        audit.mark_changed(locked, actor)
        locked.save()
        if managers is not None:
            locked.managers.set(managers)
        entry = audit.record(actor, action, locked.name, before, after, reason, locked)
        version = publisher.publish_partner(locked, previous_client_id=previous_client_id)
    partner.refresh_from_db()
    return ChangeResult(entry, version)


def _only(values: dict, allowed: tuple[str, ...], what: str) -> dict:
    unknown = set(values) - set(allowed)
    if unknown:
        raise ValueError(f"Not {what}: {sorted(unknown)}")
    return values


def change_limits(
    partner: Partner,
    actor,
    limits: dict,
    reason: str,
    expected_revision: int | None,
    within_ceilings: bool = False,
) -> ChangeResult:
    return change_partner(
        partner,
        actor,
        _only(limits, LIMIT_FIELDS, "limits"),
        reason,
        expected_revision,
        action=PartnerAudit.LIMITS_CHANGED,
        within_ceilings=within_ceilings,
    )


def change_shadow_limits(
    partner: Partner, actor, shadow: dict, reason: str, expected_revision: int | None
) -> ChangeResult:
    """Set or clear shadow values (None clears one): the gates count, never enforce, them."""
    return change_partner(
        partner,
        actor,
        _only(shadow, SHADOW_FIELDS, "shadow limits"),
        reason,
        expected_revision,
        action=PartnerAudit.SHADOW_CHANGED,
    )


# Pauses: one partner, or all partners (partner None).


def _lock_paused_subject(partner: Partner | None) -> Partner | None:
    """Take the row lock that serialises the pauses of this subject; the partner as locked."""
    if partner is None:
        FleetSettings.load(for_update=True)
        return None
    return Partner.objects.select_for_update().get(pk=partner.pk)


def _publish_pause_of(partner: Partner | None) -> int:
    return publisher.publish_defaults() if partner is None else publisher.publish_partner(partner)


def pause(partner: Partner | None, actor, reason: str, resume_at: datetime | None) -> ChangeResult:
    """Pause a partner's imports (None: every partner's), until resume_at or until resumed.

    A pause while paused replaces the one in force (its reason and resume time)."""
    with transaction.atomic():
        locked = _lock_paused_subject(partner)
        current = Override.objects.active_pause_of(locked)
        before = current.pause_state() if current else NOT_PAUSED
        now = timezone.now()
        if current is not None:
            current.close(actor, OverrideState.ENDED_EARLY, now)
        new = Override.objects.create(
            partner=locked,
            kind=OverrideKind.PAUSE,
            reason=reason,
            created_by=actor,
            created_at=now,
            ends_at=resume_at,
            reminder_due_at=Override.reminder_due(now, resume_at, actor is not None),
        )
        action = PartnerAudit.ALL_PAUSED if locked is None else PartnerAudit.PARTNER_PAUSED
        entry = audit.record(actor, action, new.subject_name, before, new.pause_state(), reason, locked)
        version = _publish_pause_of(locked)
    if partner is not None:
        partner.refresh_from_db()
    return ChangeResult(entry, version)


def resume(
    partner: Partner | None, actor, reason: str = "", due_by: datetime | None = None, only: Override | None = None
) -> ChangeResult:
    """End the pause in force. With due_by, only a pause whose resume time is at or before it
    (the system's automatic resume); with only, only that pause (not one started since)."""
    with transaction.atomic():
        locked = _lock_paused_subject(partner)
        # Read under the lock: the pause may have been renewed since it was listed.
        current = Override.objects.active_pause_of(locked)
        if current is None or (only is not None and current.pk != only.pk) or not _is_due(current, due_by):
            return NOTHING_CHANGED
        before = current.pause_state()
        current.close(actor, OverrideState.EXPIRED if due_by is not None else OverrideState.ENDED_EARLY)
        if current.ends_at is not None:
            reason = f"Pause {current.label()} ({current.reason}) ended" + (f": {reason}" if reason else ".")
        action = PartnerAudit.ALL_RESUMED if locked is None else PartnerAudit.PARTNER_RESUMED
        entry = audit.record(actor, action, current.subject_name, before, NOT_PAUSED, reason, locked)
        version = _publish_pause_of(locked)
    if partner is not None:
        partner.refresh_from_db()
    return ChangeResult(entry, version)


def _is_due(pause_in_force: Override, due_by: datetime | None) -> bool:
    return due_by is None or (pause_in_force.ends_at is not None and pause_in_force.ends_at <= due_by)


def resume_due_pauses(now: datetime | None = None) -> int:
    """Resume, as the system, every pause whose resume time has come. Returns how many."""
    now = now or timezone.now()
    reason = "Scheduled resume time reached."
    due = Override.objects.active().pauses().filter(ends_at__lte=now).select_related("partner")
    return sum(resume(pause.partner, None, reason, due_by=now).changed for pause in due)


# The defaults (the `*` row) and the settings of load-coupled limits.


def _save_fleet_settings(fleet: FleetSettings, values: dict, actor) -> None:
    """Store ops' new fleet-wide values; the revision makes a form opened before stale."""
    for name, value in values.items():
        setattr(fleet, name, value)
    audit.mark_changed(fleet, actor)
    fleet.save()


def change_default_limits(actor, limits: dict, reason: str, expected_revision: int | None) -> ChangeResult:
    with transaction.atomic():
        fleet = FleetSettings.load(for_update=True)
        audit.check_fresh(fleet, expected_revision)
        before, after = audit.diff(fleet.limit_values(), limits)
        if not after:
            return NOTHING_CHANGED
        _save_fleet_settings(fleet, limits, actor)
        entry = audit.record(actor, PartnerAudit.DEFAULTS_CHANGED, "defaults (*)", before, after, reason)
        version = publisher.publish_defaults(fleet)
    return ChangeResult(entry, version)


def change_load_control_settings(actor, values: dict, reason: str, expected_revision: int | None) -> ChangeResult:
    """Ops change the controller's settings. Nothing is published: the schedule applies them
    at its next run (and restores the configured limits when they are turned off)."""
    _only(values, LOAD_CONTROL_FIELDS, "load-control settings")
    with transaction.atomic():
        fleet = FleetSettings.load(for_update=True)
        audit.check_fresh(fleet, expected_revision)
        before, after = audit.diff({name: getattr(fleet, name) for name in values}, values)
        if not after:
            return NOTHING_CHANGED
        _save_fleet_settings(fleet, values, actor)
        entry = audit.record(actor, PartnerAudit.LOAD_CONTROL_CHANGED, "load-coupled limits", before, after, reason)
    return ChangeResult(entry, None)


def _effective_state(partner: Partner) -> dict:
    return {
        "effective_max_concurrent_uploads": partner.effective_value("max_concurrent_uploads"),
        "effective_max_bytes_in_flight": partner.effective_value("max_bytes_in_flight"),
    }


def set_effective_limits(
    partner: Partner,
    max_concurrent_uploads: int | None,
    max_bytes_in_flight: int | None,
    reason: str,
    changed_at: datetime | None = None,
) -> ChangeResult:
    """The system lowers (or restores) a partner's limits in force, audited as "system" and
    published in one transaction. None, or a value at or above the configured one, means
    the configured limit; never above the partner's ceiling as it is now (growing back to a
    configured limit above a ceiling ops lowered since stops at the ceiling, and the audit
    entry says so). The partner's revision is not bumped: an editor's open form of the
    configured limits is not stale because of this."""
    with transaction.atomic():
        locked = Partner.objects.select_for_update().get(pk=partner.pk)
        before_state = _effective_state(locked)
        wanted, note = cap_at_ceilings(
            locked,
            {
                "max_concurrent_uploads": locked.max_concurrent_uploads
                if max_concurrent_uploads is None
                else max_concurrent_uploads,
                "max_bytes_in_flight": locked.max_bytes_in_flight
                if max_bytes_in_flight is None
                else max_bytes_in_flight,
            },
        )
        locked.effective_max_concurrent_uploads = _below_configured(
            wanted["max_concurrent_uploads"], locked.max_concurrent_uploads
        )
        locked.effective_max_bytes_in_flight = _below_configured(
            wanted["max_bytes_in_flight"], locked.max_bytes_in_flight
        )
        before, after = audit.diff(before_state, _effective_state(locked))
        if not after:
            return NOTHING_CHANGED
        reason = f"{reason} {note}".strip() if note else reason
        locked.effective_reason = reason if locked.reduced_limits() else ""
        locked.effective_changed_at = changed_at or timezone.now()
        locked.save(
            update_fields=[
                "effective_max_concurrent_uploads",
                "effective_max_bytes_in_flight",
                "effective_reason",
                "effective_changed_at",
            ]
        )
        entry = audit.record(
            None,
            PartnerAudit.EFFECTIVE_LIMITS_CHANGED,
            locked.name,
            before,
            after,
            reason or "configured limits restored",
            locked,
        )
        version = publisher.publish_partner(locked)
    partner.refresh_from_db()
    return ChangeResult(entry, version)


def _below_configured(effective: int | None, configured: int | None) -> int | None:
    if effective is None or configured is None or effective >= configured:
        return None
    return effective
