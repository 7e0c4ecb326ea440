"""Pausing and resuming imports: one partner or all, with reasons and automatic resume."""

from datetime import timedelta
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from core.models import AuditEntry
from partners import changes, tasks
from partners.apps import RESUME_SCHEDULE_NAME
from partners.models import Override, PartnerAudit, UploadLimitRow


def row(client_id: str) -> UploadLimitRow:
    return UploadLimitRow.objects.get(client_id=client_id)


def test_manager_pauses_their_partner_with_a_reason(login, manager_a, partner_a):
    resume_at = (timezone.now() + timedelta(hours=2)).replace(second=0, microsecond=0)
    response = login(manager_a).post(
        reverse("partners:pause", args=[partner_a.slug]),
        {"pause-reason": "CPU at 98%", "pause-resume_at": resume_at.strftime("%Y-%m-%dT%H:%M")},
    )
    assert response.status_code == 302
    published = row("theirstory-sdk")
    assert published.paused and published.pause_reason == "CPU at 98%"
    assert published.resume_at == resume_at
    entry = AuditEntry.objects.filter(partner=partner_a).first()
    assert entry.action == PartnerAudit.PARTNER_PAUSED and entry.reason == "CPU at 98%"


@pytest.mark.parametrize(
    "data,field,message",
    [
        ({"pause-reason": ""}, "reason", "A pause needs a reason"),
        ({"pause-reason": "   "}, "reason", "A pause needs a reason"),
        ({"pause-reason": "x", "pause-resume_at": "2001-01-01T00:00"}, "resume_at", "in the future"),
        ({"pause-reason": "x", "pause-resume_at": "tomorrow-ish"}, "resume_at", "valid date/time"),
        ({"pause-reason": "CPU\r\nX-Injected: 1"}, "reason", "One line only"),
        ({"pause-reason": "CPU\nhigh"}, "reason", "One line only"),
        ({"pause-reason": "CPU\u2028high"}, "reason", "One line only"),
    ],
)
def test_a_bad_pause_gives_a_field_error_and_pauses_nothing(login, ops_user, partner_a, data, field, message):
    version = row("theirstory-sdk").version
    response = login(ops_user).post(reverse("partners:pause", args=[partner_a.slug]), data)
    assert response.status_code == 400
    assert message in " ".join(response.context["pause_form"].errors[field])
    assert not row("theirstory-sdk").paused and row("theirstory-sdk").version == version


def test_resume_clears_the_pause_in_the_table(login, manager_a, partner_a):
    changes.pause(partner_a, manager_a, "maintenance", None)
    login(manager_a).post(reverse("partners:resume", args=[partner_a.slug]), {"resume-reason": "done"})
    published = row("theirstory-sdk")
    assert not published.paused and published.pause_reason == ""


def test_ops_pause_all_partner_imports(login, ops_user, partner_a):
    response = login(ops_user).post(
        reverse("partners:controls-pause-all"), {"pause-reason": "incident 42", "pause-confirm": "on"}
    )
    assert response.status_code == 302
    defaults = row("*")
    assert defaults.all_partners_paused and defaults.all_partners_pause_reason == "incident 42"
    assert not defaults.paused, "direct users are not paused by a pause of partner imports"
    assert AuditEntry.objects.first().action == PartnerAudit.ALL_PAUSED


def test_pause_all_needs_a_reason(login, ops_user):
    response = login(ops_user).post(reverse("partners:controls-pause-all"), {"pause-reason": ""})
    assert response.status_code == 400
    assert Override.objects.active_pause_of(None) is None


def test_pause_all_without_the_confirmation_box_pauses_nothing_and_says_why(login, ops_user):
    response = login(ops_user).post(reverse("partners:controls-pause-all"), {"pause-reason": "incident 42"})
    assert response.status_code == 400
    assert "Tick the box to confirm" in response.content.decode()
    assert Override.objects.active_pause_of(None) is None


@pytest.mark.parametrize(("choice", "minutes"), [("30", 30), ("60", 60), ("240", 240)])
def test_a_preset_sets_when_the_pause_ends(login, ops_user, partner_a, choice, minutes):
    before = timezone.now()
    login(ops_user).post(
        reverse("partners:pause", args=[partner_a.slug]), {"pause-reason": "incident", "pause-pause_for": choice}
    )
    ends_at = Override.objects.active_pause_of(partner_a).ends_at
    assert before + timedelta(minutes=minutes) <= ends_at <= timezone.now() + timedelta(minutes=minutes)


def test_until_a_set_time_needs_the_time(login, ops_user, partner_a):
    response = login(ops_user).post(
        reverse("partners:pause", args=[partner_a.slug]), {"pause-reason": "incident", "pause-pause_for": "at"}
    )
    assert response.status_code == 400 and "Say when the imports resume" in response.content.decode()
    assert Override.objects.active_pause_of(partner_a) is None


def test_until_resumed_by_hand_ignores_a_leftover_time(login, ops_user, partner_a):
    later = (timezone.now() + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    login(ops_user).post(
        reverse("partners:pause", args=[partner_a.slug]),
        {"pause-reason": "incident", "pause-pause_for": "", "pause-resume_at": later},
    )
    assert Override.objects.active_pause_of(partner_a).ends_at is None


def test_a_pause_resumes_by_itself_when_its_time_comes(ops_user, partner_a, partner_b):
    soon = timezone.now() + timedelta(minutes=5)
    changes.pause(partner_a, ops_user, "short break", soon)
    changes.pause(partner_b, ops_user, "until further notice", None)
    changes.pause(None, ops_user, "global break", soon)

    assert changes.resume_due_pauses(now=timezone.now()) == 0
    assert row("theirstory-sdk").paused

    assert changes.resume_due_pauses(now=soon + timedelta(seconds=1)) == 2
    assert not row("theirstory-sdk").paused
    assert row("fas-importer").paused, "a pause without a resume time stays"
    assert not row("*").all_partners_paused
    entry = AuditEntry.objects.filter(partner=partner_a).first()
    assert entry.action == PartnerAudit.PARTNER_RESUMED and entry.actor is None
    assert entry.actor_name == "system"


def test_the_worker_schedule_runs_the_automatic_resume(ops_user, partner_a):
    schedule = Schedule.objects.get(name=RESUME_SCHEDULE_NAME)
    assert schedule.func == "partners.tasks.resume_due_pauses"
    assert schedule.schedule_type == Schedule.MINUTES and schedule.minutes == 1
    changes.pause(partner_a, ops_user, "short", timezone.now() + timedelta(seconds=1))
    with mock.patch("django.utils.timezone.now", return_value=timezone.now() + timedelta(minutes=1)):
        assert tasks.resume_due_pauses() == 1
    assert not row("theirstory-sdk").paused


def test_a_renewed_pause_is_not_resumed_by_a_stale_listing(ops_user, partner_a):
    due = timezone.now() - timedelta(seconds=1)
    changes.pause(partner_a, ops_user, "first", timezone.now() + timedelta(hours=1))
    assert not changes.resume(partner_a, None, "late", due_by=due).changed
    assert row("theirstory-sdk").paused


@pytest.mark.parametrize("subject", ["partner", "all"])
def test_a_pause_stored_with_line_breaks_is_published_on_one_line(ops_user, partner_a, subject):
    # Stored before the form refused line breaks (or by any other path): the table never gets them.
    partner = partner_a if subject == "partner" else None
    changes.pause(partner, ops_user, "CPU at 98%\r\nX-Injected: yes\nand more", None)
    published = row("theirstory-sdk" if partner else "*")
    reason = published.pause_reason if partner else published.all_partners_pause_reason
    assert reason == "CPU at 98% X-Injected: yes and more"
