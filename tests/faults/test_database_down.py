"""The dashboard with its database unreachable: clear 503s, and reporters keep their reports.

The outage is forced with a connection execute_wrapper that raises OperationalError on every
query, which is what Django raises when PostgreSQL refuses or drops the connection; it works on
SQLite too, where a stopped server cannot be simulated otherwise.
"""

from contextlib import contextmanager

import pytest
from django.db import OperationalError, connection
from django.test import Client

from monitoring import servers
from monitoring.models import ServerReport
from tests.factories import report_body


@contextmanager
def database_down():
    def refuse(execute, sql, params, many, context):
        raise OperationalError("connection to server at 127.0.0.1 refused")

    with connection.execute_wrapper(refuse):
        yield


@pytest.fixture
def registered_server(ops_user):
    return servers.register_server(ops_user, "upload-1", "test")


@pytest.fixture
def outage_client():
    # The default test client re-raises the view's exception; a browser sees the handled answer.
    return Client(raise_request_exception=False)


def test_the_report_api_answers_503_json_with_retry_after_and_stores_nothing_while_down(
    registered_server, outage_client
):
    _, token = registered_server
    with database_down():
        response = outage_client.post(
            "/api/v1/reports",
            report_body(),
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 503
    assert response["Retry-After"].isdigit()
    assert "database is unreachable" in response.json()["error"]
    assert ServerReport.objects.count() == 0


def test_the_same_report_is_accepted_once_the_database_is_back(registered_server, outage_client):
    _, token = registered_server

    def post():
        return outage_client.post(
            "/api/v1/reports",
            report_body(sequence=5),
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}"},
        )

    with database_down():
        assert post().status_code == 503
    back = post()
    assert back.status_code == 202 and back.json()["status"] == "accepted"
    assert ServerReport.objects.get().sequence == 5


def test_a_page_says_the_database_is_unreachable_instead_of_a_stack_trace(ops_user):
    browser = Client(raise_request_exception=False)
    browser.force_login(ops_user)
    with database_down():
        response = browser.get("/")
    assert response.status_code == 503
    body = response.content.decode()
    assert "The database is unreachable" in body
    assert "Traceback" not in body and "OperationalError" not in body


def test_a_chart_poll_answers_503_json_while_down(ops_user):
    browser = Client(raise_request_exception=False)
    browser.force_login(ops_user)
    with database_down():
        response = browser.get("/api/charts/cpu")
    assert response.status_code == 503 and "error" in response.json()


def test_any_other_failure_shows_the_plain_500_page_without_a_stack_trace(ops_user):
    def bug(execute, sql, params, many, context):
        raise RuntimeError("a bug, not an outage")

    browser = Client(raise_request_exception=False)
    browser.force_login(ops_user)
    with connection.execute_wrapper(bug):
        response = browser.get("/")
    assert response.status_code == 500 and not response.has_header("Retry-After")
    body = response.content.decode()
    assert "Something went wrong" in body and "RuntimeError" not in body
