"""`manage.py check_config`: one line per part, what is wrong in words, exit code 1 if anything is."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from core.models import AuditEntry
from dashboard.models import OperationsAudit
from tests.factories import free_port, make_aws_group

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[str, CommandError | None]:
    out = StringIO()
    try:
        call_command("check_config", *args, stdout=out)
    except CommandError as error:
        return out.getvalue(), error
    return out.getvalue(), None


def line(output: str, name: str) -> str:
    return next(text for text in output.splitlines() if text.split()[1:2] == [name])


@pytest.fixture(autouse=True)
def local_debug(settings):
    settings.DEBUG = True  # as under `make run` (the test runner turns DEBUG off)


def test_a_local_setup_passes_and_the_check_is_audited_as_system():
    output, failure = run("--reason", "after the upgrade")
    assert failure is None, output
    assert line(output, "database").startswith("ok") and "every migration applied" in line(output, "database")
    assert "uses the database as its broker" in line(output, "broker")
    assert "not used" in line(output, "aws")
    entry = AuditEntry.objects.get(action=OperationsAudit.CONFIG_CHECKED)
    assert entry.actor_name == "system" and entry.after["email"] == "ok"
    assert entry.reason.startswith("after the upgrade (manage.py check_config, run by ")


def test_an_unreachable_redis_fails_with_a_non_zero_exit(settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    output, failure = run()
    assert failure is not None and "broker" in str(failure)
    assert line(output, "broker").startswith("FAIL") and "does not answer" in line(output, "broker")
    assert line(output, "database").startswith("ok")


def test_an_smtp_server_that_is_not_there_fails(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    output, failure = run()
    assert failure is not None and "refused or unreachable" in line(output, "email")


def test_production_settings_left_at_local_values_fail(settings):
    settings.DEBUG = False
    settings.DASHBOARD_BASE_URL = "http://127.0.0.1:8000"
    output, failure = run()
    assert failure is not None
    assert "DASHBOARD_BASE_URL is http://127.0.0.1:8000" in line(output, "settings")
    assert "alert emails reach no one" in line(output, "email")


def test_aws_without_credentials_is_named(fake_aws_environment, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    make_aws_group("upload-servers")
    output, failure = run()
    assert failure is not None and "no AWS credentials" in line(output, "aws")


def test_an_aws_group_that_does_not_exist_is_named(fake_aws_environment, settings):
    from moto import mock_aws

    settings.AWS_MAX_ATTEMPTS = 1
    make_aws_group("upload-servers")
    with mock_aws():
        output, failure = run()
    assert failure is not None and "Auto Scaling group upload-servers not found" in line(output, "aws")
