"""What people do to alerts: silence, expire a silence, acknowledge. Each audited in the
same transaction as the change."""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from alerting.models import Alert, AlertAudit, AlertRule, Silence
from core import audit


def create_silence(
    actor, rule: AlertRule, subject: str, comment: str, duration: timedelta, now: datetime | None = None
) -> Silence:
    now = now or timezone.now()
    with transaction.atomic():
        silence = Silence.objects.create(
            rule=rule, subject=subject, comment=comment, created_by=actor, created_at=now, expires_at=now + duration
        )
        audit.record(
            actor,
            AlertAudit.ALERT_SILENCED,
            f"alert rule: {rule.name}",
            {},
            {"subject": subject or "all", "expires_at": silence.expires_at.isoformat()},
            comment,
            rule,
        )
    return silence


def expire_silence(actor, silence: Silence, reason: str, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    with transaction.atomic():
        still_active = Silence.objects.filter(id=silence.id, expires_at__gt=now)
        if not still_active.update(expires_at=now, expired_by=actor):
            return False
        audit.record(
            actor,
            AlertAudit.ALERT_SILENCED,
            f"alert rule: {silence.rule.name}",
            {"expires_at": silence.expires_at.isoformat()},
            {"expires_at": now.isoformat()},
            reason or "Silence expired by hand.",
            silence.rule,
        )
        silence.expires_at = now
    return True


def acknowledge(actor, alert: Alert, now: datetime | None = None) -> bool:
    """Stops reminders for this alert; the resolved email still goes out."""
    now = now or timezone.now()
    with transaction.atomic():
        if not alert.acknowledge(actor, now):
            return False
        audit.record(
            actor,
            AlertAudit.ALERT_ACKNOWLEDGED,
            f"alert: {alert.rule.name} [{alert.subject}]",
            {},
            {"acknowledged_at": now.isoformat()},
            "",
            alert,
        )
    return True
