"""The JSON the dashboard's pages poll: chart data, the fleet status, and the overview's one poll.

Every open dashboard polls every few seconds; one result serves them all for a moment
(CHART_CACHE_SECONDS), per audience: what a user may be shown depends on the partners they see.
"""

import json
import logging
from functools import wraps

from django.conf import settings
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from redis.exceptions import RedisError

from alerting.context import open_alert_summary
from alerting.models import AlertRule
from core import roles
from dashboard import charts, consumers, timeline
from monitoring.models import MetricSource, UploadServer
from monitoring.queries import UnknownRange, Window
from partners.access import partner_for, visible_partners
from partners.models import Override, Partner, UploadLimitRow

logger = logging.getLogger(__name__)


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _role_required(view):
    """The fleet's figures are for ops, engineers and partner managers; a user with no role
    (an account not yet given one) gets a JSON 403."""

    @wraps(view)
    def checked(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not roles.has_role(request.user):
            return _error(403, "your account has no role yet: ask ops to give you one")
        return view(request, *args, **kwargs)

    return checked


def _window(request: HttpRequest) -> Window:
    return Window.parse(request.GET.get("range"))


# Who a cached chart may be served to (the cache key's audience part).


def _everyone(user) -> str:
    return "all"


def _one_user(user) -> str:
    return f"user-{user.pk}"


def _audience(user) -> str:
    """Charts that depend on the partners one may see: whoever sees all partners shares one."""
    return "all" if roles.sees_everything(user) else _one_user(user)


# While one request rebuilds a chart, others may serve the previous body, at most this many
# chart lifetimes old; a rebuild that died frees its claim after REBUILD_CLAIM_SECONDS.
PREVIOUS_BODY_LIFETIMES = 5
REBUILD_CLAIM_SECONDS = 30


def _shared_for_a_moment(key: str, build):
    """The body built for `key` in the last CHART_CACHE_SECONDS, else a fresh one.

    Every open dashboard polls the same few charts every 5 s; sharing one result for a
    couple of seconds turns 200 identical aggregations into one (bench/load.py at 10x),
    and the data are at most that much older. 0 turns it off.
    """
    seconds = settings.CHART_CACHE_SECONDS
    if seconds <= 0:
        return build()
    try:
        body = cache.get(key)
        if body is not None:
            return body
        # One request rebuilds; those arriving meanwhile get the previous body rather than
        # building it again each (at 10x, the herd after each expiry made the p95 triple).
        previous = cache.get(f"{key}:previous")
        claimed = previous is not None and cache.add(f"{key}:building", True, REBUILD_CLAIM_SECONDS)
    except CACHE_ERRORS:
        logger.warning("chart cache unreachable; building %s without it", key, exc_info=True)
        return build()
    if previous is not None and not claimed:
        return previous
    try:
        body = build()
    finally:
        if claimed:
            _quietly(cache.delete, f"{key}:building")
    _quietly(cache.set, key, body, seconds)
    _quietly(cache.set, f"{key}:previous", body, seconds * PREVIOUS_BODY_LIFETIMES)
    return body


# What the Redis cache raises when its server is away (ConnectionError, TimeoutError): the
# chart is then built for each request, as without a cache, rather than failing the page.
CACHE_ERRORS = (RedisError, OSError)


def _quietly(call, *args) -> None:
    try:
        call(*args)
    except CACHE_ERRORS:
        logger.warning("chart cache unreachable; %s not stored", args[0])


def _chart_view(build=None, *, audience=_everyone):
    """A JSON chart endpoint: the range from ?range=, a 400 that names a bad one.

    audience: who may be served the chart built for a user (_everyone, _audience: by the
    partners one sees, _one_user: when it depends on the role too, as links only ops follow).
    """
    if build is None:
        return lambda build: _chart_view(build, audience=audience)

    def body(request: HttpRequest, window: Window, *args, **kwargs) -> dict:
        arguments = (f"{name}={value}" for name, value in sorted(kwargs.items()))
        key = ":".join(["chart", build.__name__, window.name, audience(request.user), *arguments])
        return _shared_for_a_moment(key, lambda: build(request, window, *args, **kwargs))

    @require_GET
    @_role_required
    def view(request: HttpRequest, *args, **kwargs) -> JsonResponse:
        try:
            window = _window(request)
        except UnknownRange as error:
            return _error(400, str(error))
        return JsonResponse(body(request, window, *args, **kwargs))

    view.__name__ = build.__name__
    view.body = body  # for overview_poll
    return view


# The rule whose threshold the CPU chart draws: the chart shows what this alert compares.
FLEET_CPU_RULE = "fleet-cpu-high"


@_chart_view
def cpu_chart(request, window):
    rule = AlertRule.objects.filter(slug=FLEET_CPU_RULE, enabled=True).first()
    return charts.cpu_chart(window, rule.threshold if rule else None)


@_chart_view(audience=_audience)
def uploads_chart(request, window):
    return charts.partner_stack_chart(window, "uploads_in_progress", request.user)


@_chart_view(audience=_audience)
def bytes_chart(request, window):
    return charts.partner_stack_chart(window, "bytes_in_flight", request.user)


@_chart_view
def outcomes_chart(request, window):
    return charts.outcomes_chart(window)


@_chart_view
def queues_chart(request, window):
    return charts.queues_chart(window)


@_chart_view(audience=_audience)
def partner_usage_chart(request, window, slug: str):
    return charts.partner_usage_chart(window, partner_for(request, slug))


@_chart_view(audience=_one_user)
def timeline_chart(request, window):
    """The timeline's events over the chart's range, for annotations on the CPU chart."""
    events = timeline.events(window.start, window.end, user=request.user)
    return {"range": window.name, "kinds": timeline.KIND_COLORS, "events": [event.as_json() for event in events]}


def _fleet_status_body(request: HttpRequest) -> dict:
    return _shared_for_a_moment(f"fleet-status:{_audience(request.user)}", lambda: fleet_status_for(request.user))


@require_GET
@_role_required
def fleet_status(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_fleet_status_body(request))


# What the overview page polls every 5 s: its five charts, the timeline and the fleet
# status in one request, so an open dashboard costs one request a poll instead of seven
# (bench/load.py), and the charts and tables show the same moment.
OVERVIEW_CHARTS = {
    "cpu": cpu_chart,
    "uploads": uploads_chart,
    "bytes": bytes_chart,
    "outcomes": outcomes_chart,
    "queues": queues_chart,
    "timeline": timeline_chart,
}


@require_GET
@_role_required
def overview_poll(request: HttpRequest) -> HttpResponse:
    try:
        window = _window(request)
    except UnknownRange as error:
        return _error(400, str(error))
    return HttpResponse(
        _shared_for_a_moment(
            f"overview:{window.name}:{_one_user(request.user)}", lambda: _overview_json(request, window)
        ),
        content_type="application/json",
    )


def _overview_json(request: HttpRequest, window: Window) -> bytes:
    # Encoded once per CHART_CACHE_SECONDS and user: with 500 servers the answer is a few
    # hundred kB (a line and a table row per server), too much to encode again per poll.
    body = {name: view.body(request, window) for name, view in OVERVIEW_CHARTS.items()}
    return json.dumps({**body, "status": _fleet_status_body(request)}, cls=DjangoJSONEncoder).encode()


# The fleet status: the servers table, what is paused, collector health.


def fleet_status_for(user) -> dict:
    """The servers table, what is paused, collector health. A fixed handful of queries."""
    now = timezone.now()
    newest_version = UploadLimitRow.published_version()
    rows = [
        _server_row(server, now, newest_version)
        for server in UploadServer.objects.filter(revoked_at=None, gone_at=None)
    ]
    partners = list(visible_partners(user).with_pause())
    return {
        "now": now.isoformat(),
        "config_version": newest_version,
        "servers": rows,
        "live_servers": sum(1 for row in rows if not row["silent"]),
        "waiting_servers": sum(1 for row in rows if row["waiting"]),
        "live_servers_counted": UploadServer.live_count(now),
        "applied_newest": sum(1 for row in rows if not row["silent"] and row["config_version"] == newest_version),
        **pauses_for(user, partners),
        "top_consumers": consumers.top_consumers(user, UploadServer.live(now), partners),
        # The nav's, the title's and the overview's alert state, refreshed with every poll.
        "alerts": open_alert_summary() if roles.sees_everything(user) else None,
        "sources": [_source_row(source) for source in MetricSource.objects.all()]
        if roles.sees_everything(user)
        else [],
    }


def pauses_for(user, partners: list[Partner] | None = None) -> dict:
    """What is paused, as the overview's banner, "paused" tile and "Paused now" list show it:
    the page and its live refresh draw all three from this one answer, so they never disagree.

    partners: the user's visible partners with their pauses prefetched, if already loaded."""
    pause_all = Override.objects.active_pause_of(None)
    if partners is None:
        partners = list(visible_partners(user).with_pause())
    paused = [
        {
            "name": p.name,
            "url": p.get_absolute_url(),
            "reason": p.active_pause.reason,
            "resume_at": p.active_pause.ends_at.isoformat() if p.active_pause.ends_at else None,
        }
        for p in partners
        if p.paused
    ]
    return {
        "all_partners_paused": pause_all is not None,
        "all_partners_pause_reason": pause_all.reason if pause_all else "",
        "paused_partners": paused,
        # While all imports are paused every partner is paused, whatever its own state.
        "paused_count": len(partners) if pause_all else len(paused),
    }


def _server_row(server: UploadServer, now, newest_version) -> dict:
    return {
        "name": server.name,
        "cpu_percent": server.last_cpu_percent,
        "uploads_in_progress": server.last_uploads_in_progress,
        "bytes_in_flight": server.last_bytes_in_flight,
        "config_version": server.last_config_version,
        "config_current": server.last_config_version == newest_version,
        "last_seen_at": server.last_seen_at.isoformat() if server.last_seen_at else None,
        "silent": server.is_silent(now),
        # Registered, never reported: a server still starting, not one that went quiet.
        "waiting": server.last_seen_at is None,
    }


def _source_row(source: MetricSource) -> dict:
    return {
        "name": str(source),
        "enabled": source.enabled,
        "failing": source.failing,
        "last_success_at": source.last_success_at.isoformat() if source.last_success_at else None,
        "last_error": source.last_error,
    }
