"""The weekly summary email to ops: last week's peak CPU, alerts fired, scaling actions,
limit changes and pauses, and the risk register's open risks.

A WeeklySummary row per week is the claim: created before sending (a unique week), so a task
that runs twice, or on two workers, sends once. A failure that may pass releases the claim so
the next run retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from alerting.models import Alert
from core.mail import TransportError, dashboard_link, send_email, templated_email
from core.models import AuditEntry
from core.roles import OPS_GROUP
from dashboard import risk
from dashboard.models import WeeklySummary
from fleet.models import ScalingAction
from monitoring import queries
from partners.models import PartnerAudit

MAX_ERROR_CHARS = 2000
LIMIT_CHANGE_ACTIONS = (
    PartnerAudit.LIMITS_CHANGED,
    PartnerAudit.DEFAULTS_CHANGED,
    PartnerAudit.OVERRIDE_STARTED,
    PartnerAudit.OVERRIDE_ENDED,
    PartnerAudit.EFFECTIVE_LIMITS_CHANGED,
)
PAUSE_ACTIONS = (PartnerAudit.PARTNER_PAUSED, PartnerAudit.ALL_PAUSED)


@dataclass
class WeekFigures:
    week_start: date
    starts_at: datetime
    ends_at: datetime
    peak_cpu_percent: float | None
    alerts_fired: int
    scaling_actions: int
    scaling_actions_succeeded: int
    limit_changes: int
    pauses: int
    open_risks: list


def last_week_start(now: datetime) -> date:
    """The Monday (UTC) of the last full week before now."""
    today = now.astimezone(UTC).date()
    return today - timedelta(days=today.weekday() + 7)


def week_figures(week_start: date, now: datetime | None = None) -> WeekFigures:
    now = now or timezone.now()
    starts_at = datetime.combine(week_start, time(), tzinfo=UTC)
    ends_at = starts_at + timedelta(days=7)
    in_week = {"gte": starts_at, "lt": ends_at}
    actions = ScalingAction.objects.filter(**_between("requested_at", in_week))
    return WeekFigures(
        week_start=week_start,
        starts_at=starts_at,
        ends_at=ends_at,
        peak_cpu_percent=queries.peak_fleet_cpu_percent(starts_at, ends_at),
        alerts_fired=Alert.objects.filter(**_between("fired_at", in_week)).count(),
        scaling_actions=actions.count(),
        scaling_actions_succeeded=actions.filter(status=ScalingAction.Status.SUCCEEDED).count(),
        limit_changes=AuditEntry.objects.filter(
            action__in=LIMIT_CHANGE_ACTIONS, **_between("created_at", in_week)
        ).count(),
        pauses=AuditEntry.objects.filter(action__in=PAUSE_ACTIONS, **_between("created_at", in_week)).count(),
        open_risks=risk.open_risks(now),
    )


def _between(field_name: str, bounds: dict) -> dict:
    return {f"{field_name}__{lookup}": value for lookup, value in bounds.items()}


def ops_addresses() -> list[str]:
    users = get_user_model().objects.filter(groups__name=OPS_GROUP, is_active=True).exclude(email="")
    return sorted(set(users.values_list("email", flat=True)))


def send_weekly_summary(now: datetime | None = None) -> bool:
    """Send last week's summary to ops once; False when already claimed or nobody to send to."""
    now = now or timezone.now()
    week_start = last_week_start(now)
    recipients = ops_addresses()
    if not recipients:
        return False
    try:
        with transaction.atomic():
            claim = WeeklySummary.objects.create(week_start=week_start, claimed_at=now, recipients=recipients)
    except IntegrityError:
        return False  # sent already, or another worker has it
    try:
        send_email(summary_message(week_figures(week_start, now), recipients))
    except TransportError as error:
        if error.permanent:
            WeeklySummary.objects.filter(pk=claim.pk).update(error=error.message[:MAX_ERROR_CHARS])
        else:
            claim.delete()
        return False
    WeeklySummary.objects.filter(pk=claim.pk).update(sent_at=timezone.now())
    return True


def summary_message(figures: WeekFigures, recipients: list[str]) -> EmailMultiAlternatives:
    return templated_email(
        "weekly-summary",
        {
            "figures": figures,
            "last_day": figures.ends_at - timedelta(days=1),
            "risk_link": dashboard_link(reverse("risk")),
            "audit_link": dashboard_link(reverse("audit")),
        },
        recipients,
    )
