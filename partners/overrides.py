"""Expiring overrides: temporary limits and pauses with an end time.

A temporary-limits override applies new values to some of a partner's limits now (locked,
audited, published in one transaction, like every change in partners.changes) and remembers
the values it replaced. At `ends_at` the system reverts it under the partner's row lock,
audited with actor "system" and a reason naming the override and its author.

An edit of the same limit while the override is active wins: at the end a field whose
value is no longer the one the override applied is left alone, and the audit entry says
so. Only one active override may cover a given limit of a partner, so two overrides never
fight over what to restore.

A pause with a resume time is an expiring override too (kind "pause"): the pause itself and
its automatic resume stay in partners.changes; the override row gives it the reminder email
and a resume audited as ending that override.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from partners import changes
from partners.models import (
    LIMIT_FIELDS,
    AuditAction,
    ExpiringOverride,
    OverrideKind,
    OverrideState,
    Partner,
)

REMINDER_MAX_ERROR_CHARS = 2000


class OverrideConflict(Exception):
    """The limits asked for are already under another active override; nothing changed."""


class NothingToOverride(Exception):
    """The values asked for are the ones in force; nothing changed."""


def reminder_due_at(created_at: datetime, ends_at: datetime, has_author: bool) -> datetime | None:
    """When to remind the author; None for an override shorter than the lead time."""
    due = ends_at - timedelta(minutes=settings.OVERRIDE_REMINDER_MINUTES)
    return due if has_author and due > created_at else None


def active_overrides(partner: Partner):
    return partner.overrides.filter(state=OverrideState.ACTIVE).select_related("created_by")


def covered_fields(partner: Partner) -> dict[str, ExpiringOverride]:
    """Limit name → the active override that covers it."""
    covered = {}
    for override in active_overrides(partner).filter(kind=OverrideKind.LIMITS):
        covered.update(dict.fromkeys(override.values, override))
    return covered


def start_override(partner: Partner, actor, limits: dict, ends_at: datetime, reason: str,
                   expected_revision: int | None) -> tuple[ExpiringOverride, changes.ChangeResult]:
    """Apply the limits that differ from those in force until ends_at."""
    unknown = set(limits) - set(LIMIT_FIELDS)
    if unknown:
        raise ValueError(f"Not limits: {sorted(unknown)}")
    now = timezone.now()
    with transaction.atomic():
        locked = Partner.objects.select_for_update().get(pk=partner.pk)
        changes._check_fresh(locked, expected_revision)
        new_values = {name: value for name, value in limits.items() if getattr(locked, name) != value}
        if not new_values:
            raise NothingToOverride("These are the limits in force already: change at least one.")
        _check_not_covered(locked, new_values)
        replaced = {name: getattr(locked, name) for name in new_values}
        override = ExpiringOverride.objects.create(
            partner=locked, kind=OverrideKind.LIMITS, values=new_values, replaced=replaced,
            reason=reason, created_by=actor, created_at=now, ends_at=ends_at,
            reminder_due_at=reminder_due_at(now, ends_at, actor is not None))
        until = timezone.localtime(ends_at).strftime("%Y-%m-%d %H:%M %Z")
        result = _apply(locked, actor, new_values, AuditAction.OVERRIDE_STARTED,
                        f"{override.label()} until {until}: {reason}")
    partner.refresh_from_db()
    return override, result


def _check_not_covered(partner: Partner, new_values: dict) -> None:
    covered = covered_fields(partner)
    for name in new_values:
        if name in covered:
            other = covered[name]
            until = timezone.localtime(other.ends_at).strftime("%Y-%m-%d %H:%M")
            raise OverrideConflict(f"{name.replace('_', ' ')} is already under {other.label()} "
                                   f"until {until} UTC: end that one first.")


def _apply(locked: Partner, actor, values: dict, action: str, reason: str) -> changes.ChangeResult:
    # Inside the caller's transaction, which holds the partner's row lock already.
    return changes.change_partner(locked, actor, values, reason, None, action=action)


def end_override(override: ExpiringOverride, actor, reason: str = "",
                 due_by: datetime | None = None) -> changes.ChangeResult:
    """End an override: by hand (actor), or as the system once ends_at <= due_by.

    A pause override ends by resuming the pause (partners.changes.resume_partner)."""
    if override.kind == OverrideKind.PAUSE and not _still_active(override):
        return changes.ChangeResult(None, None)  # that pause is over; never resume a newer one
    if override.kind == OverrideKind.PAUSE and override.partner_id is None:
        return changes.resume_all_partners(actor, reason, due_by=due_by)
    if override.kind == OverrideKind.PAUSE:
        return changes.resume_partner(override.partner, actor, reason, due_by=due_by)
    with transaction.atomic():
        locked = Partner.objects.select_for_update().get(pk=override.partner_id)
        current = ExpiringOverride.objects.select_for_update().get(pk=override.pk)
        if current.state != OverrideState.ACTIVE or (due_by is not None and current.ends_at > due_by):
            return changes.ChangeResult(None, None)  # ended or renewed since it was listed
        plan = current.restore_plan(locked)
        restore = {step["name"]: step["restores"] for step in plan if not step["edited_since"]}
        kept = [step for step in plan if step["edited_since"]]
        _close(current, actor, OverrideState.EXPIRED if due_by is not None else OverrideState.ENDED_EARLY)
        audit_reason = _end_reason(current, actor, reason, kept)
        if restore:
            return _apply(locked, actor, restore, AuditAction.OVERRIDE_ENDED, audit_reason)
        # Every field was edited since: nothing to restore, but the end is still on record.
        entry = changes.record(actor, AuditAction.OVERRIDE_ENDED, locked.name, {}, {}, audit_reason, locked)
        return changes.ChangeResult(entry, None)


def _still_active(override: ExpiringOverride) -> bool:
    return ExpiringOverride.objects.filter(pk=override.pk, state=OverrideState.ACTIVE).exists()


def _close(override: ExpiringOverride, actor, state: str) -> None:
    override.state = state
    override.ended_at = timezone.now()
    override.ended_by = actor
    override.save(update_fields=["state", "ended_at", "ended_by"])


def _end_reason(override: ExpiringOverride, actor, reason: str, kept: list[dict]) -> str:
    how = "ended early" if actor is not None else "reached its end time"
    text = f"{override.label()} ({override.reason}) {how}"
    if reason:
        text += f": {reason}"
    if kept:
        fields = ", ".join(f"{step['name']} = {step['current']}" for step in kept)
        text += f". Kept {fields}: changed by an edit since the override started."
    return text


def close_pause_overrides(partner: Partner | None, actor, due: bool) -> ExpiringOverride | None:
    """Called by partners.changes under the partner's (or the fleet settings') row lock when a
    pause ends or is renewed. partner None: the pause of all partner imports."""
    ended = None
    for override in ExpiringOverride.objects.select_for_update().filter(
            partner=partner, kind=OverrideKind.PAUSE, state=OverrideState.ACTIVE):
        _close(override, actor, OverrideState.EXPIRED if due else OverrideState.ENDED_EARLY)
        ended = override
    return ended


def open_pause_override(partner: Partner | None, actor, reason: str, ends_at: datetime) -> ExpiringOverride:
    now = timezone.now()
    return ExpiringOverride.objects.create(
        partner=partner, kind=OverrideKind.PAUSE, values={"paused": True}, replaced={"paused": False},
        reason=reason, created_by=actor, created_at=now, ends_at=ends_at,
        reminder_due_at=reminder_due_at(now, ends_at, actor is not None))


def end_due_overrides(now: datetime | None = None) -> int:
    """Revert, as the system, every temporary-limits override whose end has come."""
    now = now or timezone.now()
    ended = 0
    due = ExpiringOverride.objects.filter(kind=OverrideKind.LIMITS, state=OverrideState.ACTIVE,
                                          ends_at__lte=now).select_related("created_by")
    for override in due:
        ended += end_override(override, None, due_by=now).changed
    return ended


# ---- reminder emails ------------------------------------------------------------------------

def send_due_reminders(now: datetime | None = None) -> int:
    """Email each active override's author once, OVERRIDE_REMINDER_MINUTES before its end."""
    from monitoring.alerting.notify import TransportError, send_email

    now = now or timezone.now()
    sent = 0
    due = ExpiringOverride.objects.filter(state=OverrideState.ACTIVE, reminder_due_at__lte=now,
                                          reminder_claimed_at=None).select_related("partner", "created_by")
    for override in due:
        if not ExpiringOverride.objects.filter(id=override.id, reminder_claimed_at=None).update(
                reminder_claimed_at=now):
            continue  # another worker has it
        try:
            send_email(reminder_message(override, now))
        except TransportError as error:
            _record_reminder_failure(override, error)
            continue
        ExpiringOverride.objects.filter(id=override.id).update(reminder_sent_at=timezone.now())
        sent += 1
    return sent


def _record_reminder_failure(override: ExpiringOverride, error) -> None:
    """Keep the error; a failure that may pass releases the claim so the next run retries."""
    update = {"reminder_error": error.message[:REMINDER_MAX_ERROR_CHARS]}
    if not error.permanent:
        update["reminder_claimed_at"] = None
    ExpiringOverride.objects.filter(id=override.id).update(**update)


def reminder_message(override: ExpiringOverride, now: datetime) -> EmailMultiAlternatives:
    from monitoring.alerting.notify import TransportError

    address = override.created_by.email if override.created_by_id else ""
    if not address:
        raise TransportError(f"{override.author_name} has no email address.", permanent=True)
    base = settings.DASHBOARD_BASE_URL.rstrip("/")
    context = {
        "override": override, "partner": override.partner, "now": now,
        "minutes_left": max(0, round((override.ends_at - now).total_seconds() / 60)),
        "plan": override.restore_plan() if override.kind == OverrideKind.LIMITS else [],
        "is_pause": override.kind == OverrideKind.PAUSE,
        "link": base + (f"{override.partner.get_absolute_url()}#overrides" if override.partner_id
                        else f"{reverse('controls')}#overrides"),
    }
    subject = " ".join(render_to_string("emails/override-reminder-subject.txt", context).split())
    message = EmailMultiAlternatives(subject, render_to_string("emails/override-reminder-body.txt", context),
                                     settings.DEFAULT_FROM_EMAIL, [address])
    message.attach_alternative(render_to_string("emails/override-reminder-body.html", context), "text/html")
    return message
