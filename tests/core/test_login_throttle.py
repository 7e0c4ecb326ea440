"""Login throttling: repeated failures for one user name from one address, or from one address
for any names, make logins from there wait; nobody can lock a user name out from everywhere."""

import logging
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.urls import reverse

from core.login_throttle import client_ip
from tests.factories import PASSWORD

LIMIT = 5


def log_in(username: str, password: str, address: str = "203.0.113.7"):
    return Client(REMOTE_ADDR=address).post(reverse("login"), {"username": username, "password": password})


def fail(username: str, times: int, address: str = "203.0.113.7") -> None:
    for _ in range(times):
        response = log_in(username, "wrong-password", address)
        # The form again with its error, or (at the limit-th failure) the lockout page.
        assert response.status_code == 200 or is_locked_out(response)


def is_logged_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == reverse("overview")


def is_locked_out(response) -> bool:
    return response.status_code == 429 and "Too many failed logins" in response.content.decode()


def test_a_few_failures_do_not_lock_anyone_out(ops_user):
    for _ in range(LIMIT - 1):
        page = log_in(ops_user.username, "wrong").content.decode()
        assert "Please enter a correct username and password" in page
    assert is_logged_in(log_in(ops_user.username, PASSWORD))


def test_five_failures_for_a_user_name_lock_it_out_even_with_the_right_password(ops_user):
    fail(ops_user.username, LIMIT)
    response = log_in(ops_user.username, PASSWORD)
    assert is_locked_out(response)
    page = response.content.decode()
    assert "Wait 15 minutes" in page and "5 failed attempts" in page and "30 from this address" in page
    assert response["Retry-After"] == "900"
    assert "_auth_user_id" not in response.client.session


def test_a_stranger_cannot_lock_ops_out_from_their_own_address(ops_user):
    """Five wrong passwords for "ops" from the stranger's address lock out that address only."""
    fail(ops_user.username, LIMIT, "198.51.100.66")
    assert is_locked_out(log_in(ops_user.username, PASSWORD, "198.51.100.66"))
    assert is_logged_in(log_in(ops_user.username, PASSWORD, "192.0.2.10"))


def test_failures_spread_over_many_addresses_do_not_lock_the_user_name(ops_user):
    for number in range(1, 3 * LIMIT + 1):
        fail(ops_user.username, 1, f"198.51.100.{number}")
    assert is_logged_in(log_in(ops_user.username, PASSWORD, "192.0.2.99"))


def test_failures_from_one_address_for_many_names_lock_out_that_address_for_every_user(settings, ops_user, manager_a):
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 12
    for number in range(12):
        fail(f"guess-{number}", 1, "203.0.113.50")
    assert is_locked_out(log_in(manager_a.username, PASSWORD, "203.0.113.50"))
    assert is_logged_in(log_in(manager_a.username, PASSWORD, "203.0.113.51"))


def test_an_address_below_its_own_limit_is_not_locked_out(settings, manager_a):
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 12
    for number in range(11):
        fail(f"guess-{number}", 1, "203.0.113.50")
    assert is_logged_in(log_in(manager_a.username, PASSWORD, "203.0.113.50"))


def test_the_count_is_kept_in_the_database_so_every_web_process_sees_it(ops_user):
    fail(ops_user.username, LIMIT)
    attempt = AccessAttempt.objects.get(username=ops_user.username)
    assert attempt.failures_since_start == LIMIT and attempt.ip_address == "203.0.113.7"


def test_after_the_wait_the_user_can_log_in_again(ops_user):
    fail(ops_user.username, LIMIT)
    assert is_locked_out(log_in(ops_user.username, PASSWORD))
    # Fifteen minutes pass (AccessAttempt is axes' table, not the audit log).
    last_failure = AccessAttempt.objects.get().attempt_time
    AccessAttempt.objects.update(attempt_time=last_failure - timedelta(minutes=16))
    assert is_logged_in(log_in(ops_user.username, PASSWORD))


def test_failures_and_the_lockout_are_logged(ops_user, caplog):
    with caplog.at_level(logging.INFO, logger="axes"):
        fail(ops_user.username, LIMIT)
        log_in(ops_user.username, PASSWORD)
    warnings = [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("axes") and record.levelno >= logging.WARNING
    ]
    assert any("login failure" in m and ops_user.username in m and "203.0.113.7" in m for m in warnings)
    assert any(m.startswith("AXES: Locking out") and ops_user.username in m for m in warnings), warnings


def test_the_admin_login_is_throttled_too(ops_user):
    client = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(LIMIT):
        client.post("/admin/login/", {"username": ops_user.username, "password": "wrong"})
    assert is_locked_out(client.post("/admin/login/", {"username": ops_user.username, "password": PASSWORD}))


@pytest.mark.parametrize(
    "proxies,forwarded,expected",
    [
        (0, "1.2.3.4", "10.0.0.1"),  # no proxy: X-Forwarded-For is the client's to forge
        (1, "1.2.3.4", "1.2.3.4"),
        (1, "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # the left part was sent by the client itself
        (2, "1.2.3.4, 10.0.0.2", "1.2.3.4"),
        (1, "", "10.0.0.1"),
    ],
)
def test_the_client_address_behind_trusted_proxies(rf, settings, proxies, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = proxies
    request = rf.post("/accounts/login/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


def test_logins_without_a_request_are_not_throttled_or_refused(client, ops_user):
    """The test client's login() (and a shell's authenticate()) carry no request to count."""
    assert client.login(username=ops_user.username, password=PASSWORD)
