"""/healthz, /readyz and /metrics: no login, usable by a load balancer that sends plain HTTP with
the target's address as Host, and /metrics only for a scraper with the token or an allowed address."""

import ipaddress
import json
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from alerting.models import Alert, AlertState
from core import heartbeat
from core.models import WorkerHeartbeat
from monitoring.models import MetricSource
from partners import changes
from partners.models import ConfigVersion
from tests.factories import PRODUCTION_ENV, free_port, make_source, rule, run_manage

METRICS_TOKEN = "scrape-me-7f3a9c"


def beat(minutes_ago: float = 0) -> None:
    WorkerHeartbeat.objects.update_or_create(
        pk=heartbeat.HEARTBEAT_PK,
        defaults={"beat_at": timezone.now() - timedelta(minutes=minutes_ago), "beaten_by": "worker-1:42"},
    )


def value_of(lines: list[str], series: str) -> float:
    [value] = [line[len(series) :].strip() for line in lines if line.startswith(series + " ")]
    return float(value)


def metric_lines(client, **headers) -> list[str]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return [line for line in response.content.decode().splitlines() if not line.startswith("#")]


# ---- /healthz -------------------------------------------------------------------------


def test_healthz_answers_without_touching_the_database(client):
    # No db fixture: pytest-django fails any query this test makes.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok\n"
    assert response["Cache-Control"] == "no-store"


def test_the_probes_answer_get_only(client):
    response = client.post("/healthz")
    assert response.status_code == 405
    assert "GET" in response.json()["error"]


# ---- /readyz --------------------------------------------------------------------------


def test_readyz_is_ready_when_database_broker_cache_and_heartbeat_are(client, db):
    beat()
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["ready"] is True
    assert set(body["checks"]) == {"database", "broker", "cache", "worker_heartbeat"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["broker"]["kind"] == "database"  # no REDIS_URL: django-q2's ORM broker


def test_readyz_is_not_ready_while_the_worker_heartbeat_is_stale(client, db):
    beat(minutes_ago=10)
    response = client.get("/readyz")
    assert response.status_code == 503
    check = response.json()["checks"]["worker_heartbeat"]
    assert check["ok"] is False and check["error"] == "heartbeat stale"
    assert 590 <= check["age_seconds"] <= 610


def test_readyz_is_not_ready_before_the_first_heartbeat(client, db):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["worker_heartbeat"]["error"] == "no heartbeat yet"


def test_readyz_notices_a_stopped_worker_and_emails_the_engineers_once(client, engineer):
    beat(minutes_ago=10)
    for _ in range(5):  # the load balancer probes every few seconds
        client.get("/readyz")
    assert len(mail.outbox) == 1
    assert "the worker has stopped" in mail.outbox[0].subject


def test_readyz_names_an_unreachable_broker(client, db, settings):
    beat()
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["broker"] == {"ok": False, "error": "ConnectionError", "duration_ms": checks["broker"]["duration_ms"]}
    assert checks["database"]["ok"] and checks["cache"]["ok"]


def test_readyz_names_an_unreachable_cache(client, db, settings):
    beat()
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        }
    }
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["cache"]["ok"] is False
    assert response.json()["checks"]["database"]["ok"] is True


# ---- /metrics -------------------------------------------------------------------------


def test_metrics_refuses_a_scraper_without_the_token_from_elsewhere(client, db, settings):
    settings.METRICS_TOKEN = METRICS_TOKEN
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 403
    assert "METRICS_TOKEN" in response.json()["error"]
    wrong = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer guess")
    assert wrong.status_code == 403


def test_metrics_serves_a_scraper_with_the_token(client, db, settings):
    settings.METRICS_TOKEN = METRICS_TOKEN
    lines = metric_lines(client, REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert "uploadops_database_up 1.0" in lines


def test_metrics_serves_an_allowed_network_without_a_token(client, db, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network("10.0.0.0/16")]
    assert client.get("/metrics", REMOTE_ADDR="10.0.7.20").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.7.20").status_code == 403


def test_metrics_show_alert_states_collections_heartbeat_and_published_version(client, ops_user, partner_a, db):
    beat(minutes_ago=2)
    now = timezone.now()
    firing = rule("fleet-cpu-high")
    Alert.objects.create(
        rule=firing, subject="fleet", state=AlertState.FIRING, value=95, threshold=80,
        pending_since=now, fired_at=now, evaluated_at=now,
    )  # fmt: skip
    source = make_source(MetricSource.Kind.SQS_QUEUE, "Video")
    MetricSource.objects.filter(pk=source.pk).update(last_success_at=now)
    changes.change_limits(partner_a, ops_user, {"max_concurrent_uploads": 4}, "metrics test", None)

    lines = metric_lines(client)

    assert f'uploadops_alerts_open{{rule="fleet-cpu-high",severity="{firing.severity}",state="firing"}} 1.0' in lines
    assert value_of(lines, 'uploadops_collection_last_success_timestamp_seconds{kind="sqs_queue",name="Video"}') == (
        pytest.approx(now.timestamp())
    )
    assert value_of(lines, 'uploadops_collection_failing{kind="sqs_queue",name="Video"}') == 0
    assert 115 <= value_of(lines, "uploadops_worker_heartbeat_age_seconds") <= 130
    assert value_of(lines, "uploadops_config_version") == ConfigVersion.objects.get(pk=1).value >= 1
    assert 'uploadops_reports_refused_total{reason="unauthenticated"}' in " ".join(lines)


def test_metrics_say_never_for_a_worker_that_has_not_beaten(client, db):
    assert "uploadops_worker_heartbeat_age_seconds +Inf" in metric_lines(client)


# ---- as the load balancer sees them, with production settings ----------------------------


@pytest.fixture(scope="module")
def production_database(tmp_path_factory):
    """A migrated SQLite database with a fresh heartbeat, for the production settings."""
    path = tmp_path_factory.mktemp("production") / "db.sqlite3"
    # No REDIS_URL: django-q2's broker and the cache are then the database and the process.
    env = {**PRODUCTION_ENV, "DATABASE_URL": f"sqlite:///{path}", "REDIS_URL": ""}
    result = run_manage("migrate", "--noinput", env=env, timeout_seconds=300)
    assert result.returncode == 0, result.stderr
    return env


def production_requests(env: dict, requests: list[tuple[str, dict]]) -> list[dict]:
    code = (
        "import json; from django.test import Client; from core import heartbeat; heartbeat.beat(); c = Client(); "
        f"requests = {requests!r}; "
        "print(json.dumps([{'status': r.status_code, 'location': r.get('Location'), "
        "'type': r.get('Content-Type'), 'body': r.content.decode()[:20000]} "
        "for r in (c.get(path, **headers) for path, headers in requests)]))"
    )
    result = run_manage("shell", "-c", code, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_load_balancer_probe_passes_the_https_redirect_and_the_host_check(production_database):
    """The ALB probes each target over plain HTTP by its private address: not an allowed host."""
    probe = {"HTTP_HOST": "10.0.1.23:8000"}
    healthz, readyz, metrics, login_by_address, login_by_name = production_requests(
        production_database,
        [
            ("/healthz", probe),
            ("/readyz", probe),
            ("/metrics", {**probe, "REMOTE_ADDR": "127.0.0.1"}),
            ("/accounts/login/", probe),
            ("/accounts/login/", {"HTTP_HOST": "upload-ops.example.org"}),
        ],
    )
    assert (healthz["status"], healthz["body"]) == (200, "ok\n")
    assert readyz["status"] == 200, readyz["body"]
    assert json.loads(readyz["body"])["ready"] is True
    assert metrics["status"] == 200 and "uploadops_worker_heartbeat_age_seconds" in metrics["body"]
    # The same requests to a page: the host check and the redirect are in force for everything else.
    assert login_by_address["status"] == 400
    assert login_by_name["status"] == 301
    assert login_by_name["location"] == "https://upload-ops.example.org/accounts/login/"
