"""Expiring overrides: temporary limits that revert by themselves, audited, with a reminder."""

from datetime import timedelta
from unittest import mock

import pytest
from django.core import mail
from django.utils import timezone
from django_q.models import Schedule

from core.models import AuditEntry
from partners import changes, overrides, tasks
from partners.apps import OVERRIDES_SCHEDULE_NAME
from partners.models import Override, OverrideState, PartnerAudit, UploadLimitRow


def row(client_id: str = "theirstory-sdk") -> UploadLimitRow:
    return UploadLimitRow.objects.get(client_id=client_id)


def at(moment):
    """Travel in time: everything that asks timezone.now() gets `moment`."""
    return mock.patch("django.utils.timezone.now", return_value=moment)


@pytest.fixture
def start(partner_a):
    def start_override(actor, hours=2, reason="catch up the backlog", **limits):
        ends_at = timezone.now() + timedelta(hours=hours)
        override, _ = overrides.start_override(partner_a, actor, limits, ends_at, reason, None)
        return override

    return start_override


def test_an_override_applies_now_audited_and_published(manager_a, partner_a, start):
    version = row().version
    override = start(manager_a, max_concurrent_uploads=30, requests_per_minute=120)
    published = row()
    assert published.max_concurrent_uploads == 30 and published.version > version
    assert override.values == {"max_concurrent_uploads": 30}, "an unchanged limit is not overridden"
    assert override.replaced == {"max_concurrent_uploads": 16}
    entry = AuditEntry.objects.filter(partner=partner_a).first()
    assert entry.action == PartnerAudit.OVERRIDE_STARTED and entry.actor == manager_a
    assert entry.before == {"max_concurrent_uploads": 16} and entry.after == {"max_concurrent_uploads": 30}
    assert f"override #{override.pk}" in entry.reason and "catch up the backlog" in entry.reason


def test_at_its_end_the_system_restores_the_old_values_and_publishes(manager_a, partner_a, start):
    override = start(manager_a, max_concurrent_uploads=30, max_bytes_in_flight=80 * 10**9)
    assert overrides.end_due_overrides(now=timezone.now()) == 0
    assert row().max_concurrent_uploads == 30

    version = row().version
    with at(override.ends_at + timedelta(seconds=30)):
        assert tasks.run_expiring_overrides()["reverted"] == 1
    published = row()
    assert published.max_concurrent_uploads == 16 and published.max_bytes_in_flight == 40 * 10**9
    assert published.version > version
    entry = AuditEntry.objects.filter(partner=partner_a).first()
    assert entry.action == PartnerAudit.OVERRIDE_ENDED and entry.actor is None
    assert entry.actor_name == "system"
    assert f"override #{override.pk} by mara-manager-a" in entry.reason
    assert entry.after == {"max_concurrent_uploads": 16, "max_bytes_in_flight": 40 * 10**9}
    override.refresh_from_db()
    assert override.state == OverrideState.EXPIRED


def test_a_second_run_reverts_nothing_more(manager_a, partner_a, start):
    override = start(manager_a, max_concurrent_uploads=30)
    later = override.ends_at + timedelta(minutes=1)
    assert overrides.end_due_overrides(now=later) == 1
    changes.change_limits(partner_a, manager_a, {"max_concurrent_uploads": 20}, "new normal", None)
    assert overrides.end_due_overrides(now=later) == 0
    assert row().max_concurrent_uploads == 20


def test_an_edit_during_the_override_wins_and_the_revert_says_so(manager_a, ops_user, partner_a, start):
    override = start(manager_a, max_concurrent_uploads=30, requests_per_minute=200)
    changes.change_limits(partner_a, ops_user, {"max_concurrent_uploads": 25}, "keep more", None)
    assert overrides.end_due_overrides(now=override.ends_at) == 1
    published = row()
    assert published.max_concurrent_uploads == 25, "the later edit is left alone"
    assert published.requests_per_minute == 120, "the untouched field is restored"
    entry = AuditEntry.objects.filter(partner=partner_a).first()
    assert entry.after == {"requests_per_minute": 120}
    assert "Kept max_concurrent_uploads = 25" in entry.reason


def test_ending_early_by_hand_restores_and_is_audited(manager_a, partner_a, start):
    override = start(manager_a, burst=40)
    result = overrides.end_override(override, manager_a, "backlog done")
    assert result.changed and row().burst == 20
    entry = AuditEntry.objects.filter(partner=partner_a).first()
    assert entry.actor == manager_a and "ended early: backlog done" in entry.reason
    override.refresh_from_db()
    assert override.state == OverrideState.ENDED_EARLY and override.ended_by == manager_a
    assert overrides.end_due_overrides(now=override.ends_at) == 0


def test_nothing_changed_and_overlapping_overrides_are_refused(manager_a, partner_a, start):
    with pytest.raises(overrides.NothingToOverride):
        start(manager_a, max_concurrent_uploads=16)
    start(manager_a, max_concurrent_uploads=30)
    version = row().version
    with pytest.raises(overrides.OverrideConflict, match="already under override"):
        start(manager_a, max_concurrent_uploads=35)
    assert row().version == version and row().max_concurrent_uploads == 30


# ---- reminders ----------------------------------------------------------------------------


def test_the_author_is_reminded_once_before_the_end(manager_a, partner_a, start, settings):
    settings.OVERRIDE_REMINDER_MINUTES = 30
    override = start(manager_a, hours=2, max_concurrent_uploads=30)
    assert overrides.send_due_reminders(now=override.ends_at - timedelta(minutes=31)) == 0
    reminder_time = override.ends_at - timedelta(minutes=29)
    assert overrides.send_due_reminders(now=reminder_time) == 1
    assert overrides.send_due_reminders(now=reminder_time) == 0, "a retried job sends nothing twice"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["mara-manager-a@example.org"]
    assert message.subject == (
        f"[Upload Ops] Temporary limits of TheirStory end in 29 min "
        f"({timezone.localtime(override.ends_at):%Y-%m-%d %H:%M} UTC)"
    )
    assert "Concurrent uploads: 30 → 16" in message.body
    assert "http://127.0.0.1:8000/partners/theirstory/#overrides" in message.body


def test_a_second_worker_running_while_the_first_sends_sends_nothing(manager_a, start):
    override = start(manager_a, max_concurrent_uploads=30)
    due_time = override.ends_at - timedelta(minutes=5)
    real_send = overrides.send_email
    second_worker_sent = []

    def send_while_another_worker_runs(message):
        second_worker_sent.append(overrides.send_due_reminders(now=due_time))
        real_send(message)

    with mock.patch.object(overrides, "send_email", side_effect=send_while_another_worker_runs):
        assert overrides.send_due_reminders(now=due_time) == 1
    assert second_worker_sent == [0]
    assert len(mail.outbox) == 1


def test_a_failed_reminder_is_recorded_and_retried(manager_a, start):
    override = start(manager_a, max_concurrent_uploads=30)
    due_time = override.ends_at - timedelta(minutes=5)
    with mock.patch("django.core.mail.message.EmailMessage.send", side_effect=OSError("SMTP down")):
        assert overrides.send_due_reminders(now=due_time) == 0
    override.refresh_from_db()
    assert "SMTP down" in override.reminder_error and override.reminder_sent_at is None
    assert overrides.send_due_reminders(now=due_time + timedelta(minutes=1)) == 1
    assert len(mail.outbox) == 1


def test_a_short_override_sends_no_reminder(manager_a, start, settings):
    settings.OVERRIDE_REMINDER_MINUTES = 30
    override = start(manager_a, hours=0.25, max_concurrent_uploads=30)
    assert override.reminder_due_at is None
    assert overrides.send_due_reminders(now=override.ends_at) == 0
    assert mail.outbox == []


def test_an_ended_override_sends_no_reminder(manager_a, start):
    override = start(manager_a, max_concurrent_uploads=30)
    overrides.end_override(override, manager_a)
    assert overrides.send_due_reminders(now=override.ends_at) == 0
    assert mail.outbox == []


# ---- pauses with an end time ----------------------------------------------------------------


def test_a_pause_with_an_end_time_reminds_its_author_and_resumes_audited(manager_a, partner_a):
    resume_at = timezone.now() + timedelta(hours=3)
    changes.pause(partner_a, manager_a, "CPU at 98%", resume_at)
    override = Override.objects.get(partner=partner_a, state=OverrideState.ACTIVE)
    assert override.kind == "pause" and override.ends_at == resume_at

    with at(resume_at - timedelta(minutes=10)):
        assert tasks.run_expiring_overrides()["reminded"] == 1
    assert mail.outbox[0].subject.startswith("[Upload Ops] Pause of TheirStory ends in 10 min")
    assert "imports resume automatically" in mail.outbox[0].body

    assert changes.resume_due_pauses(now=resume_at + timedelta(seconds=1)) == 1
    assert not row().paused
    entry = AuditEntry.objects.filter(partner=partner_a).first()
    assert entry.action == PartnerAudit.PARTNER_RESUMED and entry.actor_name == "system"
    assert f"override #{override.pk} by mara-manager-a (CPU at 98%) ended" in entry.reason
    override.refresh_from_db()
    assert override.state == OverrideState.EXPIRED


def test_resuming_a_pause_by_hand_ends_its_override(manager_a, partner_a):
    changes.pause(partner_a, manager_a, "break", timezone.now() + timedelta(hours=3))
    changes.resume(partner_a, manager_a, "fleet fine")
    override = Override.objects.get(partner=partner_a)
    assert override.state == OverrideState.ENDED_EARLY
    assert overrides.send_due_reminders(now=override.ends_at) == 0


def test_a_pause_without_an_end_time_is_no_expiring_override(manager_a, partner_a):
    changes.pause(partner_a, manager_a, "until further notice", None)
    assert list(overrides.active_overrides(partner_a)) == []
    assert Override.objects.active_pause_of(partner_a).reminder_due_at is None
    assert changes.resume_due_pauses(now=timezone.now() + timedelta(days=365)) == 0


def test_the_worker_schedule_runs_reminders_and_reverts(db):
    schedule = Schedule.objects.get(name=OVERRIDES_SCHEDULE_NAME)
    assert schedule.func == "partners.tasks.run_expiring_overrides"
    assert schedule.schedule_type == Schedule.MINUTES and schedule.minutes == 1


def test_a_timed_pause_of_all_partners_reminds_its_author_and_resumes_audited(ops_user):
    resume_at = timezone.now() + timedelta(hours=2)
    changes.pause(None, ops_user, "incident 42", resume_at)
    override = Override.objects.get(partner=None, state=OverrideState.ACTIVE)
    assert overrides.send_due_reminders(now=resume_at - timedelta(minutes=20)) == 1
    message = mail.outbox[0]
    assert message.to == ["olivia-ops@example.org"]
    assert message.subject.startswith("[Upload Ops] Pause of all partners ends in 20 min")
    assert "http://127.0.0.1:8000/controls/#overrides" in message.body

    assert changes.resume_due_pauses(now=resume_at) == 1
    assert not row("*").all_partners_paused
    entry = AuditEntry.objects.first()
    assert entry.action == PartnerAudit.ALL_RESUMED and entry.actor_name == "system"
    assert f"override #{override.pk} by olivia-ops (incident 42) ended" in entry.reason


def test_a_reminder_whose_worker_died_mid_send_is_sent_once_when_its_claim_is_stale(manager_a, start, settings):
    settings.OVERRIDE_REMINDER_MINUTES = 30
    override = start(manager_a, hours=2, max_concurrent_uploads=30)
    due_time = override.ends_at - timedelta(minutes=29)
    # What a worker killed inside the SMTP conversation leaves: claimed, neither sent nor failed.
    Override.objects.filter(pk=override.pk).update(reminder_claimed_at=due_time)

    assert overrides.send_due_reminders(now=due_time + timedelta(minutes=1)) == 0, "a fresh claim may still send"
    stale = due_time + timedelta(seconds=overrides.ABANDONED_REMINDER_SECONDS + 1)
    assert overrides.send_due_reminders(now=stale) == 1
    assert overrides.send_due_reminders(now=stale + timedelta(minutes=1)) == 0
    assert len(mail.outbox) == 1


def test_the_task_reverts_before_it_reminds_so_a_hung_mail_server_holds_no_revert_back(manager_a, start, settings):
    settings.OVERRIDE_REMINDER_MINUTES = 30
    due = start(manager_a, hours=1, max_concurrent_uploads=30)
    Override.objects.filter(pk=due.pk).update(ends_at=timezone.now() - timedelta(minutes=1), reminder_due_at=None)
    soon = start(manager_a, hours=2, requests_per_minute=150)
    Override.objects.filter(pk=soon.pk).update(reminder_due_at=timezone.now() - timedelta(minutes=1))

    def killed_in_smtp(message):
        raise SystemExit("the worker was killed while sending")

    with mock.patch.object(overrides, "send_email", killed_in_smtp), pytest.raises(SystemExit):
        tasks.run_expiring_overrides()

    assert Override.objects.get(pk=due.pk).state == OverrideState.EXPIRED
    assert row().max_concurrent_uploads != 30
