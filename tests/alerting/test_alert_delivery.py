"""Delivery: Django's outbox, a real SMTP server on 127.0.0.1 (aiosmtpd), failures recorded
and retried with backoff, and a claimed notification never sent twice."""

import email
import socket
from email import policy

import pytest
from aiosmtpd.controller import Controller
from django.core import mail
from django.test import override_settings

from alerting import notify
from alerting.models import Notification
from alerting.notify import TransportError, deliver_due, retry_delay
from tests.factories import at, drive, sample

CPU = ("cpu_percent", "fleet")
pytestmark = pytest.mark.django_db


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((envelope.rcpt_tos, message))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_port():
    return free_port()


@pytest.fixture
def smtp_settings(smtp_port):
    with override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=smtp_port,
        EMAIL_HOST_USER="",
        EMAIL_HOST_PASSWORD="",
        EMAIL_USE_TLS=False,
        EMAIL_USE_SSL=False,
        ALERT_EMAIL_TIMEOUT_SECONDS=5,
    ):
        yield smtp_port


def start_smtp(port: int) -> tuple[Controller, Inbox]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, inbox


def test_the_firing_email_reaches_the_outbox_with_text_and_html(engineer):
    drive(0, [90] * 6, CPU)
    message = mail.outbox[0]
    assert message.to == [engineer.email]
    assert "Fleet CPU high" in message.body
    assert message.alternatives[0].mimetype == "text/html"
    assert Notification.objects.get().sent_at is not None


def test_the_email_arrives_over_smtp_with_both_parts(engineer, smtp_settings):
    controller, inbox = start_smtp(smtp_settings)
    try:
        drive(0, [90] * 6, CPU)
    finally:
        controller.stop()
    [(recipients, message)] = inbox.messages
    assert recipients == [engineer.email]
    assert str(message["Subject"]).strip() == "[FIRING · CRITICAL] Fleet CPU high: 90 % > 80 %"
    types = [part.get_content_type() for part in message.walk()]
    assert "text/plain" in types and "text/html" in types
    assert "Open in the dashboard" in message.get_body(("html",)).get_content()


def test_smtp_down_is_recorded_retried_with_backoff_and_sent_once_when_it_is_back(engineer, smtp_settings):
    drive(0, [90] * 6, CPU)  # fires at minute 5; nothing listens on the port
    first = Notification.objects.get(attempt=1)
    assert first.error and first.sent_at is None and not first.permanent_failure
    retry = Notification.objects.exclude(id=first.id).get()
    assert retry.attempt == 2 and retry.due_at == at(5) + retry_delay(1)
    assert (
        deliver_due(
            at(
                5,
            )
        )
        == 0
    )  # not yet due
    controller, inbox = start_smtp(smtp_settings)
    try:
        assert deliver_due(at(6)) == 1
        assert deliver_due(at(6)) == 0  # a second run finds nothing to send
        drive(6, [90] * 3, CPU)
    finally:
        controller.stop()
    assert len(inbox.messages) == 1
    assert [n.status for n in Notification.objects.order_by("attempt")] == ["failed", "sent"]


def test_a_notification_claimed_by_another_worker_is_not_sent_again(engineer):
    drive(0, [90] * 5, CPU)
    sent = []

    class Counting:
        def notify(self, notification, now):
            sent.append(notification.id)
            # A second worker starts while this one is sending.
            assert deliver_due(now, transport=self) == 0

    from alerting import evaluation

    sample(*CPU, at(5), 90)
    evaluation.evaluate(at(5))
    deliver_due(at(5), transport=Counting())
    assert len(sent) == 1


def test_a_permanent_failure_is_recorded_and_not_retried(engineer):
    drive(0, [90] * 5, CPU)

    class Refusing:
        def notify(self, notification, now):
            raise TransportError("550 no such user", permanent=True)

    from alerting import evaluation

    sample(*CPU, at(5), 90)
    evaluation.evaluate(at(5))
    deliver_due(at(5), transport=Refusing())
    notification = Notification.objects.get()
    assert notification.permanent_failure and notification.error == "550 no such user"


def test_retries_stop_after_the_last_attempt(engineer, monkeypatch):
    monkeypatch.setattr(notify, "MAX_ATTEMPTS", 3)

    class Down:
        def notify(self, notification, now):
            raise TransportError("connection refused")

    from alerting import evaluation

    drive(0, [90] * 5, CPU)
    sample(*CPU, at(5), 90)
    evaluation.evaluate(at(5))
    for minute in range(5, 60):
        deliver_due(at(minute), transport=Down())
    assert Notification.objects.count() == 3
    assert Notification.objects.get(attempt=3).permanent_failure


def test_no_recipients_is_a_permanent_failure():
    drive(0, [90] * 6, CPU)  # no engineer exists
    notification = Notification.objects.get()
    assert notification.permanent_failure and "No recipients" in notification.error


def test_an_email_whose_worker_died_mid_send_is_sent_again_once(engineer):
    from datetime import timedelta

    drive(0, [90] * 5, CPU)
    from alerting import evaluation

    sample(*CPU, at(5), 90)
    evaluation.evaluate(at(5))
    first = Notification.objects.get(attempt=1, sent_at=None, error="")
    # What a worker SIGKILLed inside the SMTP conversation leaves: a claim and no outcome.
    Notification.objects.filter(id=first.id).update(claimed_at=at(5))
    mail.outbox.clear()
    assert deliver_due(at(6)) == 0  # it may still be sending
    stale = at(5) + timedelta(seconds=notify.ABANDONED_CLAIM_SECONDS + 1)
    assert deliver_due(stale) == 0 and deliver_due(stale) == 0
    first.refresh_from_db()
    assert "worker stopped while sending" in first.error
    retry = Notification.objects.get(attempt=2)
    assert deliver_due(retry.due_at) == 1
    assert deliver_due(retry.due_at + timedelta(hours=1)) == 0
    assert len(mail.outbox) == 1
