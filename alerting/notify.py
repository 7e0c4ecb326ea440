"""Delivery of queued notifications through a transport with one method, `notify()`.

Each attempt is a Notification row claimed with a conditional update before sending, so a
job that runs twice sends nothing twice. A failure that may pass (SMTP down, a timeout)
queues the next attempt as a new row after an exponential backoff.
"""

from datetime import datetime, timedelta

from django.utils import timezone

from alerting import emails
from alerting.models import Notification
from core.mail import TransportError, send_email

MAX_ATTEMPTS = 10
FIRST_RETRY_SECONDS = 60
MAX_RETRY_SECONDS = 3600
# A claim this old with no outcome belongs to a worker that died while sending (killed, OOM):
# far beyond one SMTP conversation, each step of which times out in ALERT_EMAIL_TIMEOUT_SECONDS.
ABANDONED_CLAIM_SECONDS = 600
ABANDONED_MESSAGE = (
    "The worker stopped while sending (killed or crashed), so the email may or may "
    "not have left; it is sent again, as a lost alert is worse than a repeated one."
)


class EmailTransport:
    """Django's email backend (SMTP in production, locmem in tests)."""

    def __init__(self):
        # Shared by the emails of one batch: the partner load is the same for all of them.
        self.shared: dict = {}

    def notify(self, notification: Notification, now: datetime) -> None:
        if not notification.recipients:
            raise TransportError(
                "No recipients: no engineer has an email address and the rule lists no other address.", permanent=True
            )
        send_email(emails.build_message(notification, now, self.shared))


def retry_delay(attempt: int) -> timedelta:
    return timedelta(seconds=min(FIRST_RETRY_SECONDS * 2 ** (attempt - 1), MAX_RETRY_SECONDS))


def deliver_due(now: datetime | None = None, transport=None) -> int:
    """Send every notification due and unclaimed; returns how many were sent."""
    now = now or timezone.now()
    transport = transport or EmailTransport()
    recover_abandoned(now)
    sent = 0
    due = Notification.objects.filter(claimed_at=None, due_at__lte=now).select_related("alert__rule")
    for notification in due.order_by("due_at", "id"):
        if not Notification.objects.filter(id=notification.id, claimed_at=None).update(claimed_at=now):
            continue  # another worker has it
        try:
            transport.notify(notification, now)
        except TransportError as error:
            _record_failure(notification, error, now)
            continue
        Notification.objects.filter(id=notification.id).update(sent_at=timezone.now())
        sent += 1
    return sent


def recover_abandoned(now: datetime) -> int:
    """Turn claims of workers that died mid-send into failures with a retry; returns how many."""
    abandoned = Notification.objects.filter(
        sent_at=None, error="", permanent_failure=False, claimed_at__lt=now - timedelta(seconds=ABANDONED_CLAIM_SECONDS)
    )
    for notification in abandoned:
        # The conditional update is the claim on the recovery: two sweepers retry it once.
        if Notification.objects.filter(id=notification.id, error="").update(error=ABANDONED_MESSAGE):
            _record_failure(notification, TransportError(ABANDONED_MESSAGE), now)
    return len(abandoned)


def _record_failure(notification: Notification, error: TransportError, now: datetime) -> None:
    final = error.permanent or notification.attempt >= MAX_ATTEMPTS
    Notification.objects.filter(id=notification.id).update(error=error.message[:2000], permanent_failure=final)
    if not final:
        retry = Notification.objects.create(
            alert=notification.alert,
            kind=notification.kind,
            recipients=notification.recipients,
            attempt=notification.attempt + 1,
            created_at=now,
            due_at=now + retry_delay(notification.attempt),
        )
        retry.related.set(notification.related.all())
