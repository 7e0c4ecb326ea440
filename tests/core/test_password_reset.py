"""Password reset by email is throttled: per email address (silently) and per client address (429)."""

import pytest
from django.core import mail
from django.test import Client

from tests.factories import make_user

pytestmark = pytest.mark.django_db
URL = "/accounts/password_reset/"


def ask(email: str, address: str = "203.0.113.7"):
    return Client(REMOTE_ADDR=address).post(URL, {"email": email})


def test_ten_requests_for_ops_send_three_emails_and_every_answer_looks_the_same(ops_user):
    answers = [ask(ops_user.email, f"198.51.100.{n}") for n in range(10)]
    assert [a.status_code for a in answers] == [302] * 10
    assert {a["Location"] for a in answers} == {"/accounts/password_reset/done/"}
    assert len(mail.outbox) == 3 and mail.outbox[0].to == [ops_user.email]


def test_one_address_asking_too_often_gets_a_429(ops_user):
    users = [make_user(f"user-{n}") for n in range(10)]
    for user in users:
        assert ask(user.email).status_code == 302
    refused = ask(ops_user.email)
    assert refused.status_code == 429 and "Too many password resets" in refused.content.decode()
    assert ops_user.email not in [message.to[0] for message in mail.outbox]
    assert ask(ops_user.email, "203.0.113.8").status_code == 302


def test_the_reset_form_still_works(ops_user):
    page = Client().get(URL)
    assert page.status_code == 200 and 'name="email"' in page.content.decode()
    assert ask(ops_user.email).status_code == 302 and len(mail.outbox) == 1
