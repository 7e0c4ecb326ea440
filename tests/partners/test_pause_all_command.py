"""`manage.py pause_all` / `resume_all`: the break-glass pause, published and audited as the system."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from core.models import AuditEntry
from partners.models import DEFAULTS_CLIENT_ID, Override, PartnerAudit, UploadLimitRow

pytestmark = pytest.mark.django_db


def run(name: str, *args) -> str:
    out = StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue()


def star_row() -> UploadLimitRow:
    return UploadLimitRow.objects.get(client_id=DEFAULTS_CLIENT_ID)


def test_pause_all_publishes_the_pause_and_resume_all_lifts_it_audited_as_system(partner_a):
    version = star_row().version
    said = run("pause_all", "--reason", "fleet overloaded, dashboard down")
    assert "All partner imports paused until resume_all" in said
    assert star_row().all_partners_paused and star_row().version > version
    entry = AuditEntry.objects.get(action=PartnerAudit.ALL_PAUSED)
    assert entry.actor_name == "system"
    assert entry.reason.startswith("fleet overloaded, dashboard down (manage.py pause_all, run by ")

    assert "resumed" in run("resume_all", "--reason", "fleet recovered")
    assert not star_row().all_partners_paused
    assert AuditEntry.objects.get(action=PartnerAudit.ALL_RESUMED).actor_name == "system"


def test_pause_all_with_minutes_resumes_by_itself():
    run("pause_all", "--reason", "short break", "--minutes", "30")
    pause = Override.objects.active().pauses().get(partner=None)
    assert pause.ends_at is not None


@pytest.mark.parametrize(
    "name,args,words",
    [
        ("pause_all", ["--reason", ""], "Say why"),
        ("pause_all", ["--reason", "x", "--minutes", "0"], "at least 1"),
        ("resume_all", ["--reason", "nothing is paused"], "not paused; nothing changed"),
    ],
)
def test_bad_input_exits_non_zero_and_publishes_nothing(name, args, words):
    with pytest.raises(CommandError, match=words):
        run(name, *args)
    assert not star_row().all_partners_paused and not AuditEntry.objects.exists()
