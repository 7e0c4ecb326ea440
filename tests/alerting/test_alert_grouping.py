"""Alertmanager's habits: alerts of one cause that are due together are one email, and a
warning waits while a critical of the same cause fires."""

from datetime import timedelta

import pytest
from django.core import mail

from alerting.models import Alert, AlertState, Notification
from tests.factories import T0, alert_state, make_server, tick

pytestmark = pytest.mark.django_db
FLEET = ("cpu_percent", "fleet")


@pytest.fixture(autouse=True)
def recipients(engineer):
    return engineer


def server_cpu(name: str) -> tuple[str, str]:
    return ("cpu_percent", f"server:{name}")


def drive_minutes(start: int, minutes: int, samples: dict) -> int:
    for minute in range(start, start + minutes):
        tick(T0 + timedelta(minutes=minute), samples)
    return start + minutes


def test_two_saturated_servers_are_one_email_naming_both():
    drive_minutes(0, 4, {server_cpu("s1"): 99, server_cpu("s2"): 98, FLEET: 60})
    assert alert_state("server-cpu-saturated", "server:s1") == AlertState.FIRING
    assert alert_state("server-cpu-saturated", "server:s2") == AlertState.FIRING
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert "(+1 related)" in message.subject
    assert "server:s1" in message.body and "server:s2" in message.body and "99 %" in message.body


def test_server_warnings_wait_while_the_fleet_critical_fires_and_are_sent_after_it_resolves():
    minute = drive_minutes(0, 7, {server_cpu("s1"): 90, server_cpu("s2"): 90, FLEET: 90})
    assert alert_state("fleet-cpu-high") == AlertState.FIRING
    minute = drive_minutes(minute, 4, {server_cpu("s1"): 99, server_cpu("s2"): 99, FLEET: 95})
    assert alert_state("fleet-cpu-high") == AlertState.FIRING
    assert alert_state("server-cpu-saturated", "server:s1") == AlertState.FIRING
    subjects = [m.subject for m in mail.outbox]
    assert len(subjects) == 1 and "Fleet CPU high" in subjects[0]

    # The fleet cools below 80 % while one server stays saturated: the critical resolves and
    # the warning, still true, is mailed now.
    drive_minutes(minute, 4, {server_cpu("s1"): 99, server_cpu("s2"): 50, FLEET: 70})
    assert alert_state("fleet-cpu-high") == AlertState.RESOLVED
    later = [m.subject for m in mail.outbox[1:]]
    assert any(s.startswith("[RESOLVED · CRITICAL] Fleet CPU high") for s in later)
    assert any(s.startswith("[FIRING · WARNING] Upload server CPU saturated on server:s1") for s in later)


def test_two_silent_servers_page_once():
    for name in ("upload-1", "upload-2", "upload-3"):
        make_server(name, seen_at=T0 - timedelta(minutes=5))
    tick(T0)
    assert Alert.objects.filter(rule__slug="server-silent", state=AlertState.FIRING).count() == 3
    assert len(mail.outbox) == 1 and "(+2 related)" in mail.outbox[0].subject
    assert Notification.objects.get().related.count() == 2


def test_a_grouped_email_that_fails_is_retried_with_its_group(monkeypatch, settings):
    from alerting import notify
    from core.mail import TransportError

    for name in ("upload-1", "upload-2"):
        make_server(name, seen_at=T0 - timedelta(minutes=5))

    class Down:
        def notify(self, notification, now):
            raise TransportError("SMTP down")

    monkeypatch.setattr(notify, "EmailTransport", Down)
    tick(T0)
    retry = Notification.objects.filter(attempt=2).get()
    assert retry.related.count() == 1
