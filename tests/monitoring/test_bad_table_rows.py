"""Rows of the shared config table that a server's gate cannot parse: sent in its reports,
kept on the server, shown on the servers page (docs/status-report.md, `bad_rows`)."""

import pytest
from django.urls import reverse

from monitoring.models import ServerReport, UploadServer
from tests.factories import report_body

BAD_ROW = {
    "client_id": "theirstory-sdk",
    "column": "paused",
    "problem": "not a boolean (true/false, or 0/1 on SQLite): 'false'",
}


def test_bad_rows_in_a_report_are_kept_on_the_server(registered_server, post_report):
    server, token = registered_server
    assert post_report(token, report_body(bad_rows=[BAD_ROW])).status_code == 202
    server.refresh_from_db()
    assert server.last_bad_rows == [BAD_ROW]


def test_a_later_report_without_bad_rows_clears_them(registered_server, post_report):
    server, token = registered_server
    post_report(token, report_body(sequence=1, bad_rows=[BAD_ROW]))
    post_report(token, report_body(sequence=2, bad_rows=[]))
    post_report(token, report_body(sequence=3, bad_rows=[BAD_ROW]))
    post_report(token, report_body(sequence=4))  # a gate that does not send the field: none known
    server.refresh_from_db()
    assert server.last_bad_rows == []


@pytest.mark.parametrize(
    "bad_rows,field",
    [
        ({"client_id": "p"}, "bad_rows"),
        ([BAD_ROW] * 101, "bad_rows"),
        (["p.paused"], "bad_rows.0"),
        ([{**BAD_ROW, "severity": "high"}], "bad_rows.0"),
        ([{**BAD_ROW, "problem": 5}], "bad_rows.0.problem"),
        ([{**BAD_ROW, "column": "c" * 65}], "bad_rows.0.column"),
    ],
)
def test_bad_rows_of_the_wrong_shape_get_a_400_naming_them(registered_server, post_report, bad_rows, field):
    _, token = registered_server
    response = post_report(token, report_body(bad_rows=bad_rows))
    assert response.status_code == 400 and field in response.json()["fields"]
    assert ServerReport.objects.count() == 0


def test_the_servers_page_names_each_bad_row(login, engineer, registered_server, post_report):
    server, token = registered_server
    other = {"client_id": "*", "column": "client_id", "problem": "no `*` row"}
    post_report(token, report_body(bad_rows=[BAD_ROW, other]))
    page = login(engineer).get(reverse("monitoring:servers")).content.decode()
    assert 'class="bad-rows"' in page and "2 bad rows skipped" in page
    assert "<code>theirstory-sdk</code> · <code>paused</code>: not a boolean" in page
    assert "no `*` row" in page


def test_the_servers_page_shows_no_bad_rows_when_there_are_none(login, engineer, registered_server, post_report):
    _, token = registered_server
    post_report(token, report_body())
    assert UploadServer.objects.get().last_bad_rows == []
    assert 'class="bad-rows"' not in login(engineer).get(reverse("monitoring:servers")).content.decode()
