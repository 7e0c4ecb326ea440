"""`manage.py servers register / rotate / revoke`: the token printed once, audited as the system."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from core.models import AuditEntry
from monitoring.models import ServerAudit, UploadServer
from tests.factories import report_body

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("servers", *args, stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


def test_register_prints_a_token_that_the_report_api_accepts_once_and_audits_as_system(post_report):
    token, said = run("register", "upload-7", "--reason", "new fixed host")
    assert token.startswith("uos_") and "shown this once" in said
    assert UploadServer.objects.get(name="upload-7").token_matches(token)
    assert token not in str(UploadServer.objects.values().get(name="upload-7"))
    assert post_report(token, report_body("upload-7")).status_code == 202
    entry = AuditEntry.objects.get(action=ServerAudit.SERVER_REGISTERED)
    assert entry.actor is None and entry.actor_name == "system"
    assert entry.reason.startswith("new fixed host (manage.py servers register, run by ")


def test_rotate_replaces_the_token_and_revoke_refuses_the_server(post_report):
    old, _ = run("register", "upload-7", "--reason", "new host")
    new, _ = run("rotate", "upload-7", "--reason", "token leaked in a log")
    assert new != old
    assert post_report(old, report_body("upload-7")).status_code == 401
    assert post_report(new, report_body("upload-7", sequence=2)).status_code == 202

    out, said = run("revoke", "upload-7", "--reason", "host retired")
    assert out == "" and "Revoked upload-7" in said
    assert post_report(new, report_body("upload-7", sequence=3)).status_code == 401
    actions = list(AuditEntry.objects.order_by("id").values_list("action", flat=True))
    assert actions == [ServerAudit.SERVER_REGISTERED, ServerAudit.SERVER_TOKEN_ROTATED, ServerAudit.SERVER_REVOKED]


@pytest.mark.parametrize(
    "args,words",
    [
        (["rotate", "nobody", "--reason", "x"], "No upload server named nobody"),
        (["register", "bad name!", "--reason", "x"], "bad name! not registered"),
        (["register", "upload-8", "--reason", "  "], "Say why with --reason"),
    ],
)
def test_bad_input_exits_non_zero_saying_why_and_changes_nothing(args, words):
    with pytest.raises(CommandError, match=words):
        run(*args)
    assert not AuditEntry.objects.exists() and not UploadServer.objects.exists()


def test_revoking_twice_says_so():
    run("register", "upload-7", "--reason", "new host")
    run("revoke", "upload-7", "--reason", "retired")
    with pytest.raises(CommandError, match="already revoked"):
        run("revoke", "upload-7", "--reason", "retired")
    assert AuditEntry.objects.filter(action=ServerAudit.SERVER_REVOKED).count() == 1
