"""POST /api/v1/reports: what is stored, and every way a report is refused."""

import pytest

from monitoring import servers
from monitoring.models import ServerReport, UploadServer
from partners.models import UploadLimitRow
from tests.factories import report_body


def test_a_valid_report_is_accepted_and_stored(registered_server, post_report):
    server, token = registered_server
    response = post_report(token, report_body())
    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "sequence": 1}
    stored = ServerReport.objects.get()
    assert stored.cpu_percent == 42.5 and stored.uploads_in_progress == 4
    assert stored.bytes_in_flight == 8_000_000_000 and stored.throttled == 1
    assert stored.clients["theirstory-sdk"]["admitted"] == 2
    server.refresh_from_db()
    assert server.last_config_version == 3 and not server.is_silent()


def test_a_retried_report_is_not_counted_twice(registered_server, post_report):
    _, token = registered_server
    assert post_report(token, report_body(sequence=7)).json()["status"] == "accepted"
    retry = post_report(token, report_body(sequence=7))
    assert retry.status_code == 202 and retry.json()["status"] == "duplicate"
    assert post_report(token, report_body(sequence=6)).json()["status"] == "duplicate"
    assert ServerReport.objects.count() == 1


def test_a_restarted_server_may_start_its_sequence_again(registered_server, post_report):
    _, token = registered_server
    post_report(token, report_body(sequence=900))
    assert post_report(token, report_body(sequence=0, boot_id="boot-b")).json()["status"] == "accepted"
    assert ServerReport.objects.count() == 2


@pytest.mark.parametrize(
    "overrides,field",
    [
        ({"server_id": None}, "server_id"),
        ({"server_id": "has spaces"}, "server_id"),
        ({"sequence": -1}, "sequence"),
        ({"sequence": "12"}, "sequence"),
        ({"sequence": 1.5}, "sequence"),
        ({"sequence": True}, "sequence"),
        ({"cpu_percent": 101}, "cpu_percent"),
        ({"cpu_percent": -0.1}, "cpu_percent"),
        ({"cpu_percent": "high"}, "cpu_percent"),
        ({"cpu_percent": None}, "cpu_percent"),
        ({"config_version": -2}, "config_version"),
        ({"interval_seconds": 0}, "interval_seconds"),
        ({"interval_seconds": 86400}, "interval_seconds"),
        ({"boot_id": "x" * 65}, "boot_id"),
        ({"clients": []}, "clients"),
        ({"clients": {"bad id!": {}}}, "clients.bad id!"),
        ({"clients": {"a": {"admitted": -1}}}, "clients.a.admitted"),
        ({"clients": {"a": {"bytes_in_flight": "5 GB"}}}, "clients.a.bytes_in_flight"),
        ({"clients": {"a": {"uploads": 3}}}, "clients.a.uploads"),
        ({"clients": {"a": 5}}, "clients.a"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_a_bad_field_gets_a_400_naming_it_and_stores_nothing(registered_server, post_report, overrides, field):
    server, token = registered_server
    body = report_body(**overrides)
    body = {k: v for k, v in body.items() if v is not None}
    response = post_report(token, body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid report"
    assert field in response.json()["fields"]
    assert ServerReport.objects.count() == 0
    server.refresh_from_db()
    assert server.last_seen_at is None


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff\xfe", b"  "])
def test_a_body_that_is_not_a_json_object_gets_a_400(registered_server, post_report, body):
    response = post_report(registered_server[1], body)
    assert response.status_code == 400 and "body" in response.json()["fields"]


def test_a_missing_or_wrong_token_gets_a_401(registered_server, post_report):
    assert post_report(None, report_body()).status_code == 401
    response = post_report("uos_not-a-real-token", report_body())
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
    assert ServerReport.objects.count() == 0


def test_a_revoked_token_gets_a_401(registered_server, post_report, ops_user):
    server, token = registered_server
    servers.revoke_server(server, ops_user, "decommissioned")
    assert post_report(token, report_body()).status_code == 401


def test_a_rotated_token_replaces_the_old_one(registered_server, post_report, ops_user):
    server, old_token = registered_server
    new_token = servers.rotate_token(server, ops_user, "leaked in a log")
    assert post_report(old_token, report_body()).status_code == 401
    assert post_report(new_token, report_body()).status_code == 202


def test_a_token_for_another_server_gets_a_403(registered_server, post_report):
    response = post_report(registered_server[1], report_body(server_id="upload-2"))
    assert response.status_code == 403 and "belongs to server upload-1" in response.json()["error"]


def test_an_oversize_body_gets_a_413(registered_server, post_report):
    padded = report_body()
    padded["clients"] = {f"client-{i:06d}": {"admitted": 1, "completed": 1, "throttled": 0} for i in range(4900)}
    response = post_report(registered_server[1], padded)
    assert response.status_code == 413
    assert ServerReport.objects.count() == 0


def test_a_report_that_is_not_json_gets_a_415(registered_server, post_report):
    response = post_report(registered_server[1], "cpu=40", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415


def test_get_is_not_allowed_and_no_login_is_needed_to_post(client, registered_server, post_report):
    assert client.get("/api/v1/reports").status_code == 405
    assert post_report(registered_server[1], report_body()).status_code == 202


def test_the_openapi_description_is_served(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert "/api/v1/reports" in response.json()["paths"]


def test_reports_keep_the_live_server_count_in_the_table(ops_user, post_report, settings):
    settings.FLEET_CONFIGURED_SERVER_COUNT = 5
    tokens = [servers.register_server(ops_user, f"upload-{i}", "t")[1] for i in range(3)]
    for i, token in enumerate(tokens[:2]):
        post_report(token, report_body(server_id=f"upload-{i}"))
    assert UploadLimitRow.objects.get(client_id="*").live_server_count == 2
    post_report(tokens[2], report_body(server_id="upload-2"))
    assert UploadLimitRow.objects.get(client_id="*").live_server_count == 3


def test_a_silent_server_stops_counting(ops_user, post_report, settings):
    from datetime import timedelta
    from unittest import mock

    from django.utils import timezone

    from monitoring.tasks import count_live_servers

    settings.FLEET_CONFIGURED_SERVER_COUNT = 5
    tokens = [servers.register_server(ops_user, f"upload-{i}", "t")[1] for i in range(2)]
    for i, token in enumerate(tokens):
        post_report(token, report_body(server_id=f"upload-{i}", interval_seconds=5))
    assert UploadLimitRow.objects.get(client_id="*").live_server_count == 2
    UploadServer.objects.filter(name="upload-0").update(silent_after=timezone.now() - timedelta(seconds=1))
    assert count_live_servers() == 1
    assert UploadLimitRow.objects.get(client_id="*").live_server_count == 1
    later = timezone.now() + timedelta(seconds=16)
    with mock.patch("django.utils.timezone.now", return_value=later):
        count_live_servers()
    assert UploadLimitRow.objects.get(client_id="*").live_server_count == 5, (
        "with no server live, gates fall back to the configured fleet size"
    )


def test_another_servers_report_notices_a_silent_one(ops_user, post_report, settings):
    from datetime import timedelta

    from django.utils import timezone

    from monitoring import reports

    settings.FLEET_CONFIGURED_SERVER_COUNT = 5
    tokens = [servers.register_server(ops_user, f"upload-{i}", "t")[1] for i in range(3)]
    for i, token in enumerate(tokens):
        post_report(token, report_body(server_id=f"upload-{i}"))
    assert UploadLimitRow.objects.get(client_id="*").live_server_count == 3
    UploadServer.objects.filter(name="upload-0").update(silent_after=timezone.now() - timedelta(seconds=1))
    reports._next_live_count_check["at"] = None  # the per-process recount is due
    post_report(tokens[1], report_body(server_id="upload-1", sequence=2))
    assert UploadLimitRow.objects.get(client_id="*").live_server_count == 2
