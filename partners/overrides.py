"""Temporary limits, and the reminder emails of every override with an end time.

A temporary-limits override applies new values to some of a partner's limits now (locked,
audited, published in one transaction, like every change in partners.changes) and remembers
the values it replaced. At `ends_at` the system reverts it under the partner's row lock,
audited with actor "system" and a reason naming the override and its author.

An edit of the same limit while the override is active wins: at the end a field whose
value is no longer the one the override applied is left alone, and the audit entry says
so. Only one active override may cover a given limit of a partner, so two overrides never
fight over what to restore.

Pauses are overrides too (partners.changes.pause): one with a resume time gets the same
reminder email, and ending it early here resumes it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from core import audit
from core.audit import NOTHING_CHANGED, ChangeResult, RefusedChange
from core.mail import TransportError, dashboard_link, send_email, templated_email
from partners import changes
from partners.models import LIMIT_FIELDS, Override, OverrideKind, OverrideState, Partner, PartnerAudit

REMINDER_MAX_ERROR_CHARS = 2000
# A reminder claimed this long ago and neither sent nor failed belongs to a worker that died
# while sending (alerting.notify keeps the same limit for alert emails).
ABANDONED_REMINDER_SECONDS = 600
ABANDONED_REMINDER_MESSAGE = "The worker stopped while sending this reminder; it is sent again."


class OverrideConflict(RefusedChange):
    """The limits asked for are already under another active override; nothing changed."""


class NothingToOverride(RefusedChange):
    """The values asked for are the ones in force; nothing changed."""


def active_overrides(partner: Partner):
    """The partner's overrides that end by themselves: temporary limits and timed pauses."""
    return partner.overrides.active().filter(ends_at__isnull=False).select_related("created_by")


def covered_fields(partner: Partner) -> dict[str, Override]:
    """Limit name → the active override that covers it."""
    covered = {}
    for override in partner.overrides.active().filter(kind=OverrideKind.LIMITS):
        covered.update(dict.fromkeys(override.values, override))
    return covered


def start_override(
    partner: Partner, actor, limits: dict, ends_at: datetime, reason: str, expected_revision: int | None
) -> tuple[Override, ChangeResult]:
    """Apply the limits that differ from those in force until ends_at."""
    unknown = set(limits) - set(LIMIT_FIELDS)
    if unknown:
        raise ValueError(f"Not limits: {sorted(unknown)}")
    now = timezone.now()
    with transaction.atomic():
        locked = Partner.objects.select_for_update().get(pk=partner.pk)
        audit.check_fresh(locked, expected_revision)
        new_values = {name: value for name, value in limits.items() if getattr(locked, name) != value}
        if not new_values:
            raise NothingToOverride("These are the limits in force already: change at least one.")
        _check_not_covered(locked, new_values)
        replaced = {name: getattr(locked, name) for name in new_values}
        override = Override.objects.create(
            partner=locked,
            kind=OverrideKind.LIMITS,
            values=new_values,
            replaced=replaced,
            reason=reason,
            created_by=actor,
            created_at=now,
            ends_at=ends_at,
            reminder_due_at=Override.reminder_due(now, ends_at, actor is not None),
        )
        until = timezone.localtime(ends_at).strftime("%Y-%m-%d %H:%M %Z")
        result = _apply(
            locked, actor, new_values, PartnerAudit.OVERRIDE_STARTED, f"{override.label()} until {until}: {reason}"
        )
    partner.refresh_from_db()
    return override, result


def _check_not_covered(partner: Partner, new_values: dict) -> None:
    covered = covered_fields(partner)
    for name in new_values:
        if name in covered:
            other = covered[name]
            until = timezone.localtime(other.ends_at).strftime("%Y-%m-%d %H:%M")
            raise OverrideConflict(
                f"{name.replace('_', ' ')} is already under {other.label()} until {until} UTC: end that one first."
            )


def _apply(
    locked: Partner, actor, values: dict, action: str, reason: str, within_ceilings: bool = False
) -> ChangeResult:
    # Inside the caller's transaction, which holds the partner's row lock already.
    return changes.change_partner(locked, actor, values, reason, None, action=action, within_ceilings=within_ceilings)


def end_override(override: Override, actor, reason: str = "", due_by: datetime | None = None) -> ChangeResult:
    """End an override: by hand (actor), or as the system once ends_at <= due_by.

    A pause ends by resuming it (partners.changes.resume), and only that pause: never a newer one."""
    if override.is_pause:
        return changes.resume(override.partner, actor, reason, due_by=due_by, only=override)
    with transaction.atomic():
        locked = Partner.objects.select_for_update().get(pk=override.partner_id)
        current = Override.objects.select_for_update().get(pk=override.pk)
        if current.state != OverrideState.ACTIVE or (due_by is not None and current.ends_at > due_by):
            return NOTHING_CHANGED  # ended or renewed since it was listed
        plan = current.restore_plan(locked)
        restore = {step["name"]: step["restores"] for step in plan if not step["edited_since"]}
        kept = [step for step in plan if step["edited_since"]]
        current.close(actor, OverrideState.EXPIRED if due_by is not None else OverrideState.ENDED_EARLY)
        audit_reason = _end_reason(current, actor, reason, kept)
        if restore:
            # Ops may have lowered a ceiling below what the override replaced: the ceiling holds.
            return _apply(locked, actor, restore, PartnerAudit.OVERRIDE_ENDED, audit_reason, within_ceilings=True)
        # Every field was edited since: nothing to restore, but the end is still on record.
        entry = audit.record(actor, PartnerAudit.OVERRIDE_ENDED, locked.name, {}, {}, audit_reason, locked)
        return ChangeResult(entry, None)


def _end_reason(override: Override, actor, reason: str, kept: list[dict]) -> str:
    how = "ended early" if actor is not None else "reached its end time"
    text = f"{override.label()} ({override.reason}) {how}"
    if reason:
        text += f": {reason}"
    if kept:
        fields = ", ".join(f"{step['name']} = {step['current']}" for step in kept)
        text += f". Kept {fields}: changed by an edit since the override started."
    return text


def end_due_overrides(now: datetime | None = None) -> int:
    """Revert, as the system, every temporary-limits override whose end has come."""
    now = now or timezone.now()
    due = Override.objects.active().filter(kind=OverrideKind.LIMITS, ends_at__lte=now).select_related("created_by")
    return sum(end_override(override, None, due_by=now).changed for override in due)


# ---- reminder emails ------------------------------------------------------------------------


def send_due_reminders(now: datetime | None = None) -> int:
    """Email each active override's author once, OVERRIDE_REMINDER_MINUTES before its end."""
    now = now or timezone.now()
    recover_abandoned_reminders(now)
    sent = 0
    due = (
        Override.objects.active()
        .filter(reminder_due_at__lte=now, reminder_claimed_at=None)
        .select_related("partner", "created_by")
    )
    for override in due:
        if not Override.objects.filter(id=override.id, reminder_claimed_at=None).update(reminder_claimed_at=now):
            continue  # another worker has it
        try:
            send_email(reminder_message(override, now))
        except TransportError as error:
            _record_reminder_failure(override, error)
            continue
        Override.objects.filter(id=override.id).update(reminder_sent_at=timezone.now())
        sent += 1
    return sent


def recover_abandoned_reminders(now: datetime) -> int:
    """Release reminder claims of workers that died mid-send, once each (a lost reminder is worse
    than a repeated one); the conditional update on the error is the claim on the recovery."""
    stale = Override.objects.active().filter(
        reminder_sent_at=None,
        reminder_claimed_at__lt=now - timedelta(seconds=ABANDONED_REMINDER_SECONDS),
    )
    return stale.exclude(reminder_error=ABANDONED_REMINDER_MESSAGE).update(
        reminder_claimed_at=None, reminder_error=ABANDONED_REMINDER_MESSAGE
    )


def _record_reminder_failure(override: Override, error: TransportError) -> None:
    """Keep the error; a failure that may pass releases the claim so the next run retries."""
    update = {"reminder_error": error.message[:REMINDER_MAX_ERROR_CHARS]}
    if not error.permanent:
        update["reminder_claimed_at"] = None
    Override.objects.filter(id=override.id).update(**update)


def reminder_message(override: Override, now: datetime):
    address = override.created_by.email if override.created_by_id else ""
    if not address:
        raise TransportError(f"{override.author_name} has no email address.", permanent=True)
    page = (
        f"{override.partner.get_absolute_url()}#overrides"
        if override.partner_id
        else f"{reverse('partners:controls')}#overrides"
    )
    return templated_email(
        "override-reminder",
        {
            "override": override,
            "partner": override.partner,
            "now": now,
            "minutes_left": max(0, round((override.ends_at - now).total_seconds() / 60)),
            "plan": [] if override.is_pause else override.restore_plan(),
            "is_pause": override.is_pause,
            "link": dashboard_link(page),
        },
        [address],
    )
