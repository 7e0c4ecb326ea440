"""What an alert email says: rendered from templates/emails/alert-{subject.txt,body.txt,body.html}."""

from datetime import datetime, timedelta

from django.core.mail import EmailMultiAlternatives

from alerting.models import Alert, AlertAudit, Notification, NotificationKind
from core.mail import dashboard_link, templated_email
from core.models import AuditEntry
from fleet.models import ScalingAudit
from monitoring import queries
from partners.models import Partner, PartnerAudit

TOP_PARTNERS = 5
LOAD_WINDOW = timedelta(minutes=10)
# What ops did about it: shown in every email, and as the resolved email's summary.
ACTIONS_TAKEN = (
    PartnerAudit.PARTNER_PAUSED,
    PartnerAudit.PARTNER_RESUMED,
    PartnerAudit.ALL_PAUSED,
    PartnerAudit.ALL_RESUMED,
    PartnerAudit.LIMITS_CHANGED,
    PartnerAudit.DEFAULTS_CHANGED,
    ScalingAudit.SCALING_REQUESTED,
    ScalingAudit.SCALING_POLICY_CHANGED,
    AlertAudit.ALERT_SILENCED,
    AlertAudit.ALERT_ACKNOWLEDGED,
    PartnerAudit.OVERRIDE_STARTED,
    PartnerAudit.OVERRIDE_ENDED,
)


def top_partners(now: datetime, limit: int = TOP_PARTNERS) -> list[dict]:
    """Partners by average uploads in progress over the last minutes, with their limits."""
    loads = queries.busiest_clients(now - LOAD_WINDOW, now, limit * 2)
    partners = {p.client_id: p for p in Partner.objects.filter(client_id__in=loads)}
    result = []
    for client_id, load in loads.items():
        partner = partners.get(client_id)
        result.append(
            {
                "name": client_name(client_id, partner),
                "client_id": client_id,
                "uploads_in_progress": load,
                "partner": partner,
                "limits": partner.limit_values() if partner else {},
                "paused": partner.paused if partner else False,
            }
        )
    return result[:limit]


def client_name(client_id: str, partner: Partner | None) -> str:
    """How people know a client: its partner's name, or what the gate's id means."""
    if partner:
        return partner.name
    if client_id == "*":
        return "Direct users and clients without limits of their own"
    return f"Client “{client_id}” (no partner)"


def held_back(alert: Alert) -> list[Alert]:
    """Warnings of the critical alert's cause that wait while it fires."""
    if alert.rule.severity != "critical" or alert.state != "firing":
        return []
    return [
        other
        for other in Alert.objects.filter(state="firing", rule__enabled=True, rule__severity="warning").select_related(
            "rule"
        )
        if other.rule.cause == alert.rule.cause
    ]


def actions_taken(alert: Alert, now: datetime) -> list[AuditEntry]:
    start = alert.fired_at or alert.pending_since
    return list(
        AuditEntry.objects.filter(
            action__in=ACTIONS_TAKEN, created_at__gte=start, created_at__lte=alert.closed_at or now
        ).order_by("created_at")
    )


def context(notification: Notification, now: datetime, shared: dict | None = None) -> dict:
    """shared: what every email of one delivery batch has in common (the partner load)."""
    shared = {} if shared is None else shared
    if "top_partners" not in shared:
        shared["top_partners"] = top_partners(now)
    alert = notification.alert
    rule = alert.rule
    return {
        "notification": notification,
        "kind": notification.kind,
        "alert": alert,
        "rule": rule,
        "state": "RESOLVED" if notification.kind == NotificationKind.RESOLVED else "FIRING",
        "reminder": notification.kind == NotificationKind.REMINDER,
        "severity": rule.get_severity_display().upper(),
        "since": alert.fired_at or alert.pending_since,
        "now": now,
        "duration": alert.duration(now),
        "top_partners": shared["top_partners"],
        "related": list(notification.related.select_related("rule")),
        "held_back": held_back(alert),
        "actions": actions_taken(alert, now),
        "link": dashboard_link(alert.get_absolute_url()),
    }


def build_message(notification: Notification, now: datetime, shared: dict | None = None) -> EmailMultiAlternatives:
    return templated_email("alert", context(notification, now, shared), notification.recipients)
