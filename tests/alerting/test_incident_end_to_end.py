"""An incident as the servers see it: status reports through the report API, the alert job every
minute, and no separate rollup job (the worker that rolls up lags during an incident; the
alerts must not depend on it). Time is a fake clock the reports and the evaluation share."""

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from alerting import evaluation
from alerting.models import Alert, AlertRule, AlertState
from monitoring import rollups
from monitoring.models import UploadServer
from tests.factories import T0, report_body

pytestmark = pytest.mark.django_db
REPORT_EVERY_SECONDS = 10


@pytest.fixture(autouse=True)
def recipients(engineer):
    return engineer


@pytest.fixture
def clock(monkeypatch):
    moments = [T0]
    monkeypatch.setattr(timezone, "now", lambda: moments[0])
    return moments


@pytest.fixture
def fleet(db):
    tokens = {}
    for name in ("upload-1", "upload-2"):
        server = UploadServer(name=name, report_interval_seconds=REPORT_EVERY_SECONDS)
        tokens[name] = server.issue_token()
        server.save()
    return tokens


def run_minutes(client, clock, fleet, cpu_by_minute: list[float], start_minute: int, sequence: list[int]) -> None:
    """Each minute: the alert job at its start, then every server reports every 10 s."""
    for offset, cpu in enumerate(cpu_by_minute):
        minute_start = T0 + timedelta(minutes=start_minute + offset)
        clock[0] = minute_start
        evaluation.run(minute_start)
        for second in range(0, 60, REPORT_EVERY_SECONDS):
            clock[0] = minute_start + timedelta(seconds=second)
            for name, token in fleet.items():
                sequence[0] += 1
                body = report_body(name, sequence[0], cpu_percent=cpu, interval_seconds=REPORT_EVERY_SECONDS)
                answer = client.post(
                    "/api/v1/reports",
                    json.dumps(body),
                    content_type="application/json",
                    HTTP_AUTHORIZATION=f"Bearer {token}",
                )
                assert answer.status_code == 202, answer.content


def fleet_cpu_mail() -> list[str]:
    return [m.subject for m in mail.outbox if "Fleet CPU high" in m.subject]


def test_ten_minutes_at_full_cpu_fire_the_critical_once_and_resolve_without_the_rollup_job(client, clock, fleet):
    sequence = [0]
    run_minutes(client, clock, fleet, [100.0] * 10, 0, sequence)
    alert = Alert.objects.get(rule__slug="fleet-cpu-high")
    rule = AlertRule.objects.get(slug="fleet-cpu-high")
    # Hot from the first minute; that minute is complete one evaluation later; then "for".
    latest_allowed = T0 + timedelta(minutes=1, seconds=rule.for_seconds + 60)
    assert alert.state == AlertState.FIRING and alert.fired_at <= latest_allowed
    assert [s.split("]")[0] for s in fleet_cpu_mail()] == ["[FIRING · CRITICAL"]

    run_minutes(client, clock, fleet, [20.0] * 5, 10, sequence)
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED
    assert [s.split("]")[0] for s in fleet_cpu_mail()] == ["[FIRING · CRITICAL", "[RESOLVED · CRITICAL"]


def test_minutes_that_cannot_be_rolled_up_fire_metrics_delayed_instead_of_silence(client, clock, fleet, monkeypatch):
    sequence = [0]
    run_minutes(client, clock, fleet, [50.0] * 2, 0, sequence)
    assert not Alert.objects.filter(rule__slug="metrics-delayed").exists()

    def broken(now):
        raise RuntimeError("disk full")

    monkeypatch.setattr(rollups, "roll_up_minutes", broken)
    run_minutes(client, clock, fleet, [100.0] * 4, 2, sequence)
    delayed = Alert.objects.get(rule__slug="metrics-delayed")
    assert delayed.state == AlertState.FIRING and delayed.value > 120
    assert any("Metrics delayed" in m.subject for m in mail.outbox)


def test_one_rule_that_fails_does_not_stop_the_others(clock, fleet, monkeypatch):
    real_values = evaluation.rule_values

    def values(rule, now):
        if rule.slug == "fleet-cpu-high":
            raise OverflowError("date value out of range")
        return real_values(rule, now)

    monkeypatch.setattr(evaluation, "rule_values", values)
    server = UploadServer.objects.get(name="upload-1")
    server.last_seen_at = T0 - timedelta(minutes=5)
    server.save()
    summary = evaluation.run(T0)
    assert summary["rule_failed"] == 1
    assert Alert.objects.get(rule__slug="server-silent", subject="server:upload-1").state == AlertState.FIRING
