"""The report API's edges: bodies that must be refused with a 400 a reporter can read (and then
drops), never a 500 or a 503 that it would resend forever; replays counted once across boots."""

import json

import pytest

from monitoring.models import ServerReport
from tests.factories import report_body


def refused_with(response, field: str) -> str:
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == "invalid report"
    assert field in body["fields"], body
    assert not ServerReport.objects.exists()
    return body["fields"][field]


def test_json_nested_100000_deep_is_a_400_not_a_recursion_error(registered_server, post_report):
    _, token = registered_server
    message = refused_with(post_report(token, "[" * 100_000 + "]" * 100_000), "body")
    assert "nested too deeply" in message


def test_a_key_twice_in_one_object_is_a_400(registered_server, post_report):
    server, token = registered_server
    body = json.dumps(report_body(server.name)).replace('"sequence": 1', '"sequence": 1, "sequence": 2')
    assert "'sequence' appears twice" in refused_with(post_report(token, body), "body")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "latin-1"])
def test_a_body_that_is_not_utf8_is_a_400(registered_server, post_report, encoding):
    server, token = registered_server
    body = json.dumps(report_body(server.name, boot_id="bööt"), ensure_ascii=False).encode(encoding)
    assert "not UTF-8" in refused_with(post_report(token, body), "body")


@pytest.mark.parametrize("field", ["server_id", "boot_id"])
def test_an_id_with_a_trailing_newline_is_a_400(registered_server, post_report, field):
    server, token = registered_server
    body = report_body(server.name)
    body[field] = f"{body[field]}\n"
    refused_with(post_report(token, body), field)


def test_a_client_id_with_a_trailing_newline_is_a_400(registered_server, post_report):
    server, token = registered_server
    body = report_body(server.name)
    body["clients"] = {"theirstory-sdk\n": body["clients"]["theirstory-sdk"]}
    refused_with(post_report(token, body), "clients.theirstory-sdk\n")


@pytest.mark.parametrize(
    "sent_at", [{"at": "now"}, ["2026-11-28T09:12:03Z"], 17, "x" * 200_000, "yesterday", "2026-13-40T25:61:61Z"]
)
def test_sent_at_off_the_schema_is_a_400(registered_server, post_report, sent_at):
    server, token = registered_server
    refused_with(post_report(token, report_body(server.name, sent_at=sent_at)), "sent_at")


@pytest.mark.parametrize("sent_at", ["2026-11-28T09:12:03.123Z", "2026-11-28T09:12:03+01:00", "2026-11-28T09:12:03Z"])
def test_sent_at_as_the_reporter_writes_it_is_accepted(registered_server, post_report, sent_at):
    server, token = registered_server
    assert post_report(token, report_body(server.name, sent_at=sent_at)).status_code == 202


def test_would_have_throttled_summed_over_clients_must_fit_its_column(registered_server, post_report):
    # Each client within range, the sum not: SQLite stored 2^32 - 2, PostgreSQL answered 503.
    server, token = registered_server
    clients = {f"c{i}": {"would_have_throttled": 2**31 - 1} for i in range(2)}
    message = refused_with(
        post_report(token, report_body(server.name, clients=clients)), "clients.*.would_have_throttled"
    )
    assert "2147483647" in message


def test_a_replay_from_an_earlier_boot_is_counted_once(registered_server, post_report):
    server, token = registered_server
    first_boot = report_body(server.name, sequence=7, boot_id="boot-a")
    assert post_report(token, first_boot).json()["status"] == "accepted"
    assert post_report(token, report_body(server.name, sequence=1, boot_id="boot-b")).json()["status"] == "accepted"
    replay = post_report(token, first_boot)
    assert replay.status_code == 202 and replay.json()["status"] == "duplicate"
    assert ServerReport.objects.count() == 2
    # The earlier boot's later reports (delivered late) are still new.
    late = post_report(token, report_body(server.name, sequence=8, boot_id="boot-a"))
    assert late.json()["status"] == "accepted"
    assert ServerReport.objects.count() == 3
