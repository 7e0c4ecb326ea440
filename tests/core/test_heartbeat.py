"""The worker's heartbeat: a banner on every page while it is stale, one email to engineers from
outside the worker when it goes stale, one when it is back, whoever notices first."""

import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from core import heartbeat
from core.mail import TransportError
from core.models import WorkerHeartbeat, WorkerOutage
from tests.factories import on_postgres

STALE_SECONDS = 180


@pytest.fixture
def now():
    return timezone.now().replace(microsecond=0)


def beat_at(moment):
    WorkerHeartbeat.objects.update_or_create(
        pk=heartbeat.HEARTBEAT_PK, defaults={"beat_at": moment, "beaten_by": "worker-1:42"}
    )


def subjects() -> list[str]:
    return [message.subject for message in mail.outbox]


def test_the_heartbeat_is_scheduled_every_minute_after_migrate(db):
    schedule = Schedule.objects.get(name="core: worker heartbeat")
    assert schedule.func == "core.heartbeat.beat"
    assert (schedule.schedule_type, schedule.minutes) == (Schedule.MINUTES, 1)


def test_a_beat_records_when_and_which_worker(db, now):
    heartbeat.beat(now)
    row = WorkerHeartbeat.objects.get()
    assert row.beat_at == now
    assert ":" in row.beaten_by
    assert heartbeat.heartbeat_status(now + timedelta(seconds=60)).fresh


def test_a_stale_heartbeat_emails_the_engineers_once_however_many_processes_notice(engineer, now):
    beat_at(now)
    assert heartbeat.check(now + timedelta(seconds=STALE_SECONDS)).fresh
    assert mail.outbox == []

    later = now + timedelta(seconds=STALE_SECONDS + 1)
    for seconds in range(0, 300, 10):  # probes and reports keep noticing
        heartbeat.check(later + timedelta(seconds=seconds))

    assert len(mail.outbox) == 1
    assert "the worker has stopped" in mail.outbox[0].subject
    assert mail.outbox[0].to == [engineer.email]
    assert "no alert emails" in mail.outbox[0].body
    outage = WorkerOutage.objects.get()
    assert outage.last_beat_at == now and outage.ended_at is None


def test_an_email_claimed_by_another_process_is_not_sent_again(engineer, now):
    beat_at(now)
    stale = now + timedelta(seconds=STALE_SECONDS + 60)
    # Another web process noticed a moment ago and is sending it now.
    WorkerOutage.objects.create(last_beat_at=now, noticed_at=stale, notice_claimed_at=stale)

    heartbeat.check(stale + timedelta(seconds=5))

    assert mail.outbox == []


def test_a_failed_email_is_tried_again_after_a_pause_and_then_sent_once(engineer, now, monkeypatch):
    beat_at(now)
    stale = now + timedelta(seconds=STALE_SECONDS + 60)
    real_send = heartbeat.send_email

    def smtp_down(message):
        raise TransportError("SMTPServerDisconnected: Connection unexpectedly closed")

    monkeypatch.setattr(heartbeat, "send_email", smtp_down)
    heartbeat.check(stale)
    assert WorkerOutage.objects.get().last_notice_error.startswith("SMTPServerDisconnected")

    monkeypatch.setattr(heartbeat, "send_email", real_send)
    heartbeat.check(stale + timedelta(seconds=heartbeat.NOTICE_RETRY_SECONDS - 1))
    assert mail.outbox == [], "the failed attempt's claim holds until the retry pause is over"

    heartbeat.check(stale + timedelta(seconds=heartbeat.NOTICE_RETRY_SECONDS + 1))
    heartbeat.check(stale + timedelta(seconds=heartbeat.NOTICE_RETRY_SECONDS + 30))
    assert len(mail.outbox) == 1
    assert WorkerOutage.objects.get().last_notice_error == ""


def test_the_worker_coming_back_ends_the_outage_with_one_recovery_email(engineer, now):
    beat_at(now)
    stale = now + timedelta(seconds=STALE_SECONDS + 60)
    heartbeat.check(stale)

    heartbeat.beat(stale + timedelta(seconds=30))  # the worker is back: its first beat notices
    heartbeat.check(stale + timedelta(seconds=40))
    heartbeat.check(stale + timedelta(seconds=50))

    assert len(mail.outbox) == 2
    assert "RESOLVED: the worker is running again" in mail.outbox[1].subject
    outage = WorkerOutage.objects.get()
    assert outage.ended_at == stale + timedelta(seconds=30)
    assert outage.recovery_notice_sent_at is not None


def test_a_second_outage_gets_its_own_emails(engineer, now):
    beat_at(now)
    heartbeat.check(now + timedelta(minutes=5))
    heartbeat.beat(now + timedelta(minutes=6))
    heartbeat.check(now + timedelta(minutes=20))

    assert [subject.split(":")[0] for subject in subjects()] == [
        "[Upload Ops] FIRING",
        "[Upload Ops] RESOLVED",
        "[Upload Ops] FIRING",
    ]
    assert WorkerOutage.objects.count() == 2


def test_a_worker_that_never_beat_emails_nobody(engineer, now):
    status = heartbeat.check(now)
    assert status.never_beaten and not status.fresh
    assert mail.outbox == [] and not WorkerOutage.objects.exists()


def test_without_engineers_the_email_goes_to_the_admins(db, settings, now):
    settings.ADMINS = [("Ops", "ops-oncall@example.org")]
    beat_at(now)
    heartbeat.check(now + timedelta(minutes=5))
    assert mail.outbox[0].to == ["ops-oncall@example.org"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not on_postgres(), reason="concurrent web processes need PostgreSQL's row locks")
def test_processes_noticing_at_the_same_moment_send_one_email(engineer, now):
    beat_at(now)
    stale = now + timedelta(minutes=5)
    start = threading.Barrier(4)
    errors = []

    def web_process():
        try:
            start.wait()
            heartbeat.check(stale)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=web_process) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(mail.outbox) == 1
    assert WorkerOutage.objects.count() == 1


# ---- where it is noticed: the report API, and what people see -------------------------


def test_every_page_shows_a_banner_while_the_worker_is_stopped(login, ops_user, partner_a):
    client = login(ops_user)
    beat_at(timezone.now() - timedelta(minutes=7))
    for url in (reverse("overview"), reverse("partners:list"), reverse("audit")):
        page = client.get(url).content.decode()
        assert "The worker has stopped" in page and "7 min ago" in page, url

    beat_at(timezone.now())
    assert "The worker has stopped" not in client.get(reverse("overview")).content.decode()


def test_the_banner_says_when_the_worker_has_never_started(login, ops_user):
    page = login(ops_user).get(reverse("overview")).content.decode()
    assert "The worker has not started" in page


def test_the_login_page_shows_no_banner(client, db):
    beat_at(timezone.now() - timedelta(minutes=7))
    assert "The worker" not in client.get(reverse("login")).content.decode()
