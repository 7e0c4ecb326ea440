"""The break-glass commands work when the web login does not: lifting lockouts, and a temporary
ops login that stops working by itself. Both are audited."""

from datetime import timedelta
from io import StringIO

import pytest
from axes.models import AccessAttempt
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from core.models import AccessAudit, AuditEntry, TemporaryLogin
from core.roles import is_ops
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db
LIMIT = 5


def log_in(username: str, password: str, address: str = "203.0.113.7"):
    return Client(REMOTE_ADDR=address).post(reverse("login"), {"username": username, "password": password})


def lock_out(username: str, address: str = "203.0.113.7") -> None:
    for _ in range(LIMIT):
        log_in(username, "wrong-password", address)
    assert log_in(username, PASSWORD, address).status_code == 429


def command(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_unlock_login_lets_a_locked_out_user_in_again_and_is_audited(ops_user):
    lock_out(ops_user.username)
    output = command("unlock_login", ops_user.username, "--reason", "locked out during the incident")
    assert "Unlocked olivia-ops" in output and f"{LIMIT} failed login" in output
    assert log_in(ops_user.username, PASSWORD).status_code == 302
    entry = AuditEntry.objects.get(action=AccessAudit.LOGIN_UNLOCKED)
    assert entry.subject == "login olivia-ops" and entry.before == {"failed_attempts": LIMIT}
    assert "locked out during the incident" in entry.reason and entry.actor_name == "system"


def test_unlock_login_by_address_and_all(ops_user, manager_a):
    lock_out(ops_user.username, "198.51.100.1")
    lock_out(manager_a.username, "198.51.100.2")
    command("unlock_login", "--address", "198.51.100.1")
    assert AccessAttempt.objects.filter(ip_address="198.51.100.1").count() == 0
    assert AccessAttempt.objects.filter(ip_address="198.51.100.2").exists()
    command("unlock_login", "--all")
    assert not AccessAttempt.objects.exists()


def test_unlock_login_needs_to_be_told_what(ops_user):
    with pytest.raises(CommandError, match="Name a user"):
        command("unlock_login")


def credentials_from(output: str) -> tuple[str, str]:
    lines = dict(line.split(":", 1) for line in output.splitlines() if line.startswith(("User name", "Password")))
    return lines["User name"].strip(), lines["Password"].strip()


def test_a_temporary_ops_login_works_in_the_browser_and_is_audited():
    username, password = credentials_from(
        command("temporary_ops_login", "--hours", "2", "--reason", "nobody can log in")
    )
    client = Client(REMOTE_ADDR="192.0.2.1")
    response = client.post(reverse("login"), {"username": username, "password": password})
    assert response.status_code == 302 and response["Location"] == reverse("overview")
    assert client.get(reverse("partners:controls")).status_code == 200  # an ops-only page
    assert is_ops(TemporaryLogin.objects.get().user)
    entry = AuditEntry.objects.get(action=AccessAudit.TEMPORARY_OPS_LOGIN_CREATED)
    assert entry.after["username"] == username and "nobody can log in" in entry.reason


def test_a_temporary_ops_login_stops_working_when_it_ends_sessions_included():
    username, password = credentials_from(command("temporary_ops_login", "--reason", "incident"))
    client = Client(REMOTE_ADDR="192.0.2.1")
    client.post(reverse("login"), {"username": username, "password": password})
    TemporaryLogin.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get(reverse("partners:controls"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    again = Client(REMOTE_ADDR="192.0.2.1").post(reverse("login"), {"username": username, "password": password})
    assert again.status_code == 200 and "_auth_user_id" not in again.client.session


@pytest.mark.parametrize("hours", ["0", "25"])
def test_a_temporary_login_lasts_one_to_24_hours(hours):
    with pytest.raises(CommandError, match="between 1 and 24"):
        command("temporary_ops_login", "--hours", hours, "--reason", "x")
