"""What an alert email says: rendered from templates/emails/alert-{subject.txt,body.txt,body.html}."""

from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import Avg
from django.template.loader import render_to_string
from django.urls import reverse

from monitoring import metrics
from monitoring.alert_models import Alert, Notification, NotificationKind
from monitoring.models import Rollup
from partners.models import AuditAction, AuditEntry, Partner

TOP_PARTNERS = 5
LOAD_WINDOW = timedelta(minutes=10)
# What ops did about it: shown in every email, and as the resolved email's summary.
ACTIONS_TAKEN = (AuditAction.PARTNER_PAUSED, AuditAction.PARTNER_RESUMED, AuditAction.ALL_PAUSED,
                 AuditAction.ALL_RESUMED, AuditAction.LIMITS_CHANGED, AuditAction.DEFAULTS_CHANGED,
                 AuditAction.SCALING_REQUESTED, AuditAction.SCALING_POLICY_CHANGED,
                 AuditAction.ALERT_SILENCED, AuditAction.ALERT_ACKNOWLEDGED,
                 AuditAction.OVERRIDE_STARTED, AuditAction.OVERRIDE_ENDED)


def top_partners(now: datetime, limit: int = TOP_PARTNERS) -> list[dict]:
    """Partners by average uploads in progress over the last minutes, with their limits."""
    rows = Rollup.objects.filter(
        metric=metrics.UPLOADS_IN_PROGRESS, resolution_seconds=metrics.MINUTE_SECONDS,
        subject__startswith="client:", bucket_start__gte=now - LOAD_WINDOW, bucket_start__lte=now,
    ).values("subject").annotate(load=Avg("total")).order_by("-load")[:limit * 2]
    loads = {row["subject"].removeprefix("client:"): row["load"] for row in rows}
    partners = {p.client_id: p for p in Partner.objects.filter(client_id__in=loads)}
    result = []
    for client_id, load in loads.items():
        partner = partners.get(client_id)
        result.append({"name": partner.name if partner else f"{client_id} (no partner)",
                       "client_id": client_id, "uploads_in_progress": load, "partner": partner,
                       "limits": partner.limit_values() if partner else {},
                       "paused": partner.paused if partner else False})
    return result[:limit]


def actions_taken(alert: Alert, now: datetime) -> list[AuditEntry]:
    start = alert.fired_at or alert.pending_since
    return list(AuditEntry.objects.filter(action__in=ACTIONS_TAKEN, created_at__gte=start,
                                          created_at__lte=alert.closed_at or now).order_by("created_at"))


def context(notification: Notification, now: datetime, shared: dict | None = None) -> dict:
    """shared: what every email of one delivery batch has in common (the partner load)."""
    shared = {} if shared is None else shared
    if "top_partners" not in shared:
        shared["top_partners"] = top_partners(now)
    alert = notification.alert
    rule = alert.rule
    base = settings.DASHBOARD_BASE_URL.rstrip("/")
    return {
        "notification": notification, "kind": notification.kind, "alert": alert, "rule": rule,
        "state": "RESOLVED" if notification.kind == NotificationKind.RESOLVED else "FIRING",
        "reminder": notification.kind == NotificationKind.REMINDER,
        "severity": rule.get_severity_display().upper(),
        "since": alert.fired_at or alert.pending_since, "now": now,
        "duration": alert.duration(now),
        "top_partners": shared["top_partners"], "actions": actions_taken(alert, now),
        "link": f"{base}{reverse('monitoring:alerts')}?alert={alert.id}#alert-{alert.id}",
    }


def build_message(notification: Notification, now: datetime,
                  shared: dict | None = None) -> EmailMultiAlternatives:
    ctx = context(notification, now, shared)
    subject = " ".join(render_to_string("emails/alert-subject.txt", ctx).split())
    message = EmailMultiAlternatives(subject, render_to_string("emails/alert-body.txt", ctx),
                                     settings.DEFAULT_FROM_EMAIL, notification.recipients)
    message.attach_alternative(render_to_string("emails/alert-body.html", ctx), "text/html")
    return message
