"""`manage.py send_test_alert`: an email to the engineers now, audited as the system."""

from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from alerting.models import AlertAudit
from core.models import AuditEntry

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command("send_test_alert", *args, stdout=out)
    return out.getvalue()


def test_it_emails_every_engineer_and_audits_it(engineer):
    said = run("--reason", "new SMTP relay")
    assert "Test alert sent to erin-engineer@example.org" in said
    (message,) = mail.outbox
    assert message.to == ["erin-engineer@example.org"] and "TEST alert" in message.subject
    assert "new SMTP relay" in message.body and "/alerts/" in message.body
    entry = AuditEntry.objects.get(action=AlertAudit.TEST_ALERT_SENT)
    assert entry.actor_name == "system" and entry.after == {"recipients": ["erin-engineer@example.org"]}


def test_it_sends_to_given_addresses_instead():
    run("--reason", "check the pager alias", "--to", "pager@example.org")
    assert mail.outbox[0].to == ["pager@example.org"]


def test_with_no_one_to_send_to_it_exits_non_zero():
    with pytest.raises(CommandError, match="No one to send to"):
        run("--reason", "check")
    assert not mail.outbox and not AuditEntry.objects.exists()


def test_a_mail_server_that_refuses_is_a_failure_in_words(engineer, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # the discard port: nothing listens
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    with pytest.raises(CommandError, match="The test alert was not sent: ConnectionRefusedError"):
        run("--reason", "check")
    assert not AuditEntry.objects.exists()
