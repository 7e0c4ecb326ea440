"""A refused report is counted by reason for /metrics and logged with its reason; a stored one is
counted too; and report ingest is one of the places that notice a stopped worker."""

import logging
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from core import heartbeat
from core.models import WorkerHeartbeat
from monitoring import prometheus
from tests.factories import report_body


def refused(reason: str) -> float:
    return prometheus.REPORTS_REFUSED.labels(reason)._value.get()


def ingested(result: str) -> float:
    return prometheus.REPORTS_INGESTED.labels(result)._value.get()


def refusal_logs(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "monitoring.reports"]


@pytest.mark.parametrize(
    "reason, send",
    [
        (prometheus.UNAUTHENTICATED, lambda post, token: post(None, report_body())),
        (prometheus.INVALID, lambda post, token: post(token, report_body(cpu_percent=140))),
        (prometheus.WRONG_SERVER, lambda post, token: post(token, report_body(server_id="upload-9"))),
        (prometheus.WRONG_CONTENT_TYPE, lambda post, token: post(token, "x=1", "text/plain")),
    ],
)
def test_a_refused_report_is_counted_and_logged_with_its_reason(registered_server, post_report, caplog, reason, send):
    _server, token = registered_server
    before = refused(reason)
    with caplog.at_level(logging.WARNING, logger="monitoring.reports"):
        response = send(post_report, token)

    assert response.status_code in (400, 401, 403, 415)
    assert refused(reason) == before + 1
    [record] = refusal_logs(caplog)
    assert record.reason == reason
    assert record.status_code == response.status_code
    assert response.json()["error"] in record.getMessage()


def test_an_invalid_report_logs_the_names_of_the_wrong_fields(registered_server, post_report, caplog):
    _server, token = registered_server
    with caplog.at_level(logging.WARNING, logger="monitoring.reports"):
        post_report(token, report_body(cpu_percent=140, sequence="x"))
    [record] = refusal_logs(caplog)
    assert record.fields == ["cpu_percent", "sequence"]
    assert record.server == "upload-1"


def test_stored_and_repeated_reports_are_counted_apart(registered_server, post_report):
    _server, token = registered_server
    accepted, duplicate = ingested("accepted"), ingested("duplicate")
    post_report(token, report_body(sequence=1))
    post_report(token, report_body(sequence=1))
    assert (ingested("accepted"), ingested("duplicate")) == (accepted + 1, duplicate + 1)


def test_a_report_arriving_while_the_worker_is_stopped_emails_the_engineers(
    engineer, registered_server, post_report, monkeypatch
):
    monkeypatch.setattr(heartbeat, "_next_ingest_check", 0.0)
    WorkerHeartbeat.objects.create(
        pk=heartbeat.HEARTBEAT_PK, beat_at=timezone.now() - timedelta(minutes=10), beaten_by="w:1"
    )
    _server, token = registered_server

    assert post_report(token, report_body(sequence=1)).status_code == 202
    monkeypatch.setattr(heartbeat, "_next_ingest_check", 0.0)
    assert post_report(token, report_body(sequence=2)).status_code == 202

    assert len(mail.outbox) == 1
    assert "the worker has stopped" in mail.outbox[0].subject
    assert mail.outbox[0].to == [engineer.email]


def test_a_failing_heartbeat_check_never_refuses_a_report(registered_server, post_report, monkeypatch):
    monkeypatch.setattr(heartbeat, "_next_ingest_check", 0.0)

    def broken(now=None):
        raise RuntimeError("heartbeat table unreadable")

    monkeypatch.setattr(heartbeat, "check", broken)
    _server, token = registered_server
    assert post_report(token, report_body()).status_code == 202
