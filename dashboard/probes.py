"""/healthz, /readyz and /metrics: for load balancers, deploy scripts and Prometheus, not people.

ProbesMiddleware answers these three paths before SecurityMiddleware and CommonMiddleware
(settings.MIDDLEWARE): an ALB health check comes over plain HTTP with the target's address as
its Host, so the HTTPS redirect and the ALLOWED_HOSTS check must not see it. Nothing here reads
the Host header, and no page, session or login is involved (docs/deploy.md).

- /healthz: the process answers. Touches nothing: no database, no cache.
- /readyz: the database, the broker and the cache answer, and the worker's heartbeat is
  fresh; 503 naming what failed otherwise. It is also where a stale heartbeat gets noticed and
  mailed (core.heartbeat.check).
- /metrics: the Prometheus text format, for a scraper that sends METRICS_TOKEN as a bearer
  token or comes from METRICS_ALLOWED_ADDRESSES.
"""

import hmac
import ipaddress
import logging
import math
import os
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from alerting.models import OPEN_STATES, Alert
from core import heartbeat
from monitoring import prometheus  # noqa: F401 - the report counters, shown from the first scrape
from monitoring.models import MetricSource, UploadServer
from partners.models import ConfigVersion

logger = logging.getLogger(__name__)

BROKER_TIMEOUT_SECONDS = 2.0
NO_STORE = "no-store"


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok\n", content_type="text/plain")


# ---- /readyz --------------------------------------------------------------------------


def check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {}


def check_broker() -> dict:
    if not settings.REDIS_URL:
        # django-q2's ORM broker is a table in the database checked above.
        check_database()
        return {"kind": "database"}
    import redis

    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=BROKER_TIMEOUT_SECONDS, socket_timeout=BROKER_TIMEOUT_SECONDS
    )
    try:
        client.ping()
    finally:
        client.close()
    return {"kind": "redis"}


def check_cache() -> dict:
    key, value = "readyz:probe", uuid.uuid4().hex
    cache.set(key, value, 10)
    if cache.get(key) != value:
        raise RuntimeError("the cache did not return what was just stored")
    return {}


def check_worker_heartbeat() -> dict:
    status = heartbeat.check()
    details = {"age_seconds": status.age_seconds, "stale_after_seconds": status.stale_after_seconds}
    if not status.fresh:
        reason = "no heartbeat yet" if status.never_beaten else "heartbeat stale"
        raise HeartbeatNotFresh(reason, details)
    return details


class HeartbeatNotFresh(Exception):
    def __init__(self, reason: str, details: dict):
        super().__init__(reason)
        self.details = details


READINESS_CHECKS: dict[str, Callable[[], dict]] = {
    "database": check_database,
    "broker": check_broker,
    "cache": check_cache,
    "worker_heartbeat": check_worker_heartbeat,
}


def run_check(name: str, check: Callable[[], dict]) -> dict:
    started = time.monotonic()
    try:
        result = {"ok": True, **check()}
    except HeartbeatNotFresh as stale:
        result = {"ok": False, "error": str(stale), **stale.details}
    except Exception as error:  # noqa: BLE001 - any failure means "not ready"; logged in full
        logger.warning("readiness check %s failed", name, exc_info=True)
        # The type only: this endpoint is open, and messages can carry host names.
        result = {"ok": False, "error": type(error).__name__}
    result["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


def readyz(request: HttpRequest) -> JsonResponse:
    checks = {name: run_check(name, check) for name, check in READINESS_CHECKS.items()}
    failed = [name for name, result in checks.items() if not result["ok"]]
    response = JsonResponse({"ready": not failed, "checks": checks}, status=503 if failed else 200)
    if failed:
        logger.warning("not ready: %s", ", ".join(failed), extra={"failed_checks": failed})
        # Said once above, as a warning: Django would log every failed probe as an error (and
        # email ADMINS about it) every few seconds for as long as the outage lasts.
        response._has_been_logged = True
    return response


# ---- /metrics -------------------------------------------------------------------------


class DashboardStateCollector(Collector):
    """Gauges read from the database at scrape time: the same in every process, so they are not
    kept per process like the report counters (monitoring/prometheus.py)."""

    def collect(self):
        database_up = GaugeMetricFamily("uploadops_database_up", "1 when this scrape could read the database.")
        try:
            families = [self._alerts(), *self._sources(), self._heartbeat_age(), self._config_version()]
            families.append(self._live_servers())
        except Exception:  # noqa: BLE001 - a scrape during an outage still returns the counters
            logger.warning("reading the dashboard's state for /metrics failed", exc_info=True)
            database_up.add_metric([], 0)
            yield database_up
            return
        database_up.add_metric([], 1)
        yield database_up
        yield from families

    def _alerts(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "uploadops_alerts_open", "Open alerts by rule, state and severity.", labels=["rule", "state", "severity"]
        )
        rows = (
            Alert.objects.filter(state__in=OPEN_STATES)
            .values("rule__slug", "state", "rule__severity")
            .annotate(count=Count("id"))
        )
        for row in rows:
            family.add_metric([row["rule__slug"], row["state"], row["rule__severity"]], row["count"])
        return family

    def _sources(self) -> list[GaugeMetricFamily]:
        labels = ["kind", "name"]
        last_success = GaugeMetricFamily(
            "uploadops_collection_last_success_timestamp_seconds",
            "When each CloudWatch or SQS source was last collected successfully (Unix time; 0: never).",
            labels=labels,
        )
        failing = GaugeMetricFamily(
            "uploadops_collection_failing", "1 when the source's last collection failed.", labels=labels
        )
        for source in MetricSource.objects.filter(enabled=True):
            moment = source.last_success_at
            last_success.add_metric([source.kind, source.name], moment.timestamp() if moment else 0)
            failing.add_metric([source.kind, source.name], 1 if source.failing else 0)
        return [last_success, failing]

    def _heartbeat_age(self) -> GaugeMetricFamily:
        status = heartbeat.heartbeat_status()
        family = GaugeMetricFamily(
            "uploadops_worker_heartbeat_age_seconds", "Seconds since the worker last beat (+Inf: never)."
        )
        family.add_metric([], math.inf if status.age_seconds is None else status.age_seconds)
        return family

    def _config_version(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "uploadops_config_version", "The newest version published to upload_limits (0: nothing yet)."
        )
        family.add_metric([], ConfigVersion.objects.filter(pk=1).values_list("value", flat=True).first() or 0)
        return family

    def _live_servers(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily("uploadops_upload_servers_live", "Upload servers that reported recently.")
        family.add_metric([], UploadServer.live(timezone.now()).count())
        return family


def metrics_text() -> bytes:
    state = CollectorRegistry()
    state.register(DashboardStateCollector())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Under gunicorn: the counters of every worker process, from their files.
        counters = CollectorRegistry()
        multiprocess.MultiProcessCollector(counters)
    else:
        counters = REGISTRY
    return generate_latest(counters) + generate_latest(state)


def scraper_allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    sent = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in settings.METRICS_ALLOWED_NETWORKS)


def metrics(request: HttpRequest) -> HttpResponse:
    if not scraper_allowed(request):
        message = "send METRICS_TOKEN as Authorization: Bearer <token>, or scrape from METRICS_ALLOWED_ADDRESSES"
        return JsonResponse({"error": message}, status=403)
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)


# ---- the middleware -------------------------------------------------------------------

PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "/healthz": healthz,
    "/readyz": readyz,
    "/metrics": metrics,
}


class ProbesMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info)
        if probe is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            response = JsonResponse({"error": f"{request.path_info} answers GET only"}, status=405)
            response["Allow"] = "GET, HEAD"
            return response
        response = probe(request)
        response["Cache-Control"] = NO_STORE
        return response
