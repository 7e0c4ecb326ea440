"""Silences: a silenced alert changes state but sends nothing; emails resume at expiry."""

from datetime import timedelta

import pytest
from django.core import mail

from alerting import actions
from alerting.models import AlertAudit, AlertState
from core.models import AuditEntry
from tests.factories import alert_state, at, drive, rule

CPU = ("cpu_percent", "fleet")
SERVER = ("cpu_percent", "server:upload-1")
pytestmark = pytest.mark.django_db


def test_a_silenced_rule_fires_without_email_and_mails_once_the_silence_expires(ops_user, engineer):
    actions.create_silence(ops_user, rule("fleet-cpu-high"), "", "planned load test", timedelta(minutes=10), now=at(0))
    minute = drive(0, [90] * 8, CPU)
    assert alert_state("fleet-cpu-high") == AlertState.FIRING and not mail.outbox
    drive(minute, [90] * 3, CPU)  # the silence expired at minute 10
    assert len(mail.outbox) == 1 and "FIRING" in mail.outbox[0].subject


def test_a_silence_is_audited_with_its_author_and_comment(ops_user):
    actions.create_silence(ops_user, rule("fleet-cpu-high"), "", "planned load test", timedelta(hours=1))
    entry = AuditEntry.objects.get(action=AlertAudit.ALERT_SILENCED)
    assert entry.actor == ops_user and entry.reason == "planned load test"


def test_a_silence_for_one_subject_lets_the_others_mail(ops_user, engineer):
    actions.create_silence(
        ops_user, rule("server-cpu-saturated"), "server:upload-1", "being replaced", timedelta(hours=1), now=at(0)
    )
    drive(0, [99] * 3, SERVER)
    drive(3, [99] * 3, ("cpu_percent", "server:upload-2"))
    assert alert_state("server-cpu-saturated", "server:upload-1") == AlertState.FIRING
    assert [m.subject for m in mail.outbox if "upload-1" in m.subject] == []
    assert len([m for m in mail.outbox if "upload-2" in m.subject]) == 1


def test_an_alert_resolved_while_silenced_sends_no_resolved_email(ops_user, engineer):
    minute = drive(0, [90] * 6, CPU)
    assert len(mail.outbox) == 1
    actions.create_silence(ops_user, rule("fleet-cpu-high"), "", "known, fixing", timedelta(hours=1), now=at(minute))
    minute = drive(minute, [10] * 3, CPU)
    assert alert_state("fleet-cpu-high") == AlertState.RESOLVED
    drive(minute + 60, [10], CPU)  # long after the silence expired
    assert len(mail.outbox) == 1


def test_expiring_a_silence_by_hand_resumes_emails_at_once(ops_user, engineer):
    silence = actions.create_silence(ops_user, rule("fleet-cpu-high"), "", "maintenance", timedelta(hours=2), now=at(0))
    minute = drive(0, [90] * 6, CPU)
    assert not mail.outbox
    assert actions.expire_silence(ops_user, silence, "done early", now=at(minute))
    assert not actions.expire_silence(ops_user, silence, "again", now=at(minute))
    drive(minute, [90], CPU)
    assert len(mail.outbox) == 1
    assert AuditEntry.objects.filter(action=AlertAudit.ALERT_SILENCED).count() == 2
