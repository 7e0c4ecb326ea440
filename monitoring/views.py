import json
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dashboard import roles, timeline
from monitoring import overview, reports, servers
from monitoring.charts import UnknownRange, Window
from monitoring.forms import RegisterServerForm, ServerActionForm
from monitoring.models import UploadServer
from partners.access import partner_for, require_ops

OPENAPI_PATH = Path(__file__).resolve().parent.parent / "docs" / "status-report.openapi.json"


def _error(status: int, message: str, **details) -> JsonResponse:
    return JsonResponse({"error": message, **details}, status=status)


# The report API: token-authenticated, for upload servers, not people.

@csrf_exempt
@login_not_required
@require_POST
def post_report(request: HttpRequest) -> JsonResponse:
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > reports.MAX_REPORT_BYTES:
        return _error(413, f"report larger than {reports.MAX_REPORT_BYTES} bytes")
    if request.content_type != "application/json":
        return _error(415, "send the report as Content-Type: application/json")
    server = reports.authenticate(request.headers.get("Authorization", ""))
    if server is None:
        response = _error(401, "missing, unknown or revoked token: send Authorization: Bearer <token>")
        response["WWW-Authenticate"] = 'Bearer realm="upload-ops reports"'
        return response
    try:
        report = reports.parse_report(request.body)
    except reports.InvalidReport as invalid:
        return _error(400, "invalid report", fields=invalid.errors)
    if report.server_id != server.name:
        return _error(403, f"this token belongs to server {server.name}, not {report.server_id}")
    try:
        stored = reports.store_report(server, report)
    except DatabaseError:
        return _error(503, "the dashboard's database is unavailable; keep the report and retry")
    return JsonResponse({"status": "accepted" if stored else "duplicate", "sequence": report.sequence},
                        status=202)


@login_not_required
@require_GET
def openapi(request: HttpRequest) -> HttpResponse:
    return HttpResponse(OPENAPI_PATH.read_text(), content_type="application/json")


# Chart data for the overview and partner pages (polled every few seconds).

def _window(request: HttpRequest, raw_allowed: bool = True) -> Window:
    return Window.parse(request.GET.get("range"), raw_allowed=raw_allowed)


# Who a cached chart may be served to (the cache key's audience part).

def _everyone(user) -> str:
    return "all"


def _one_user(user) -> str:
    return f"user-{user.pk}"


def _audience(user) -> str:
    """Charts that depend on the partners one may see: whoever sees all partners shares one."""
    return "all" if roles.sees_all_partners(user) else _one_user(user)


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
    body = cache.get(key)
    if body is not None:
        return body
    # One request rebuilds; those arriving meanwhile get the previous body rather than
    # building it again each (at 10x, the herd after each expiry made the p95 triple).
    previous = cache.get(f"{key}:previous")
    claimed = previous is not None and cache.add(f"{key}:building", True, REBUILD_CLAIM_SECONDS)
    if previous is not None and not claimed:
        return previous
    try:
        body = build()
    finally:
        if claimed:
            cache.delete(f"{key}:building")
    cache.set(key, body, seconds)
    cache.set(f"{key}:previous", body, seconds * PREVIOUS_BODY_LIFETIMES)
    return body


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
    def view(request: HttpRequest, *args, **kwargs) -> JsonResponse:
        try:
            window = _window(request)
        except UnknownRange as error:
            return _error(400, str(error))
        return JsonResponse(body(request, window, *args, **kwargs))
    view.__name__ = build.__name__
    view.body = body  # for overview_poll
    return view


@_chart_view
def cpu_chart(request, window):
    return overview.cpu_chart(window, settings.FLEET_CPU_ALERT_PERCENT)


@_chart_view(audience=_audience)
def uploads_chart(request, window):
    return overview.partner_stack_chart(window, "uploads_in_progress", request.user)


@_chart_view(audience=_audience)
def bytes_chart(request, window):
    return overview.partner_stack_chart(window, "bytes_in_flight", request.user)


@_chart_view
def outcomes_chart(request, window):
    return overview.outcomes_chart(window)


@_chart_view
def queues_chart(request, window):
    return overview.queues_chart(window)


@_chart_view(audience=_audience)
def partner_usage_chart(request, window, slug: str):
    return overview.partner_usage_chart(window, partner_for(request, slug))


@_chart_view(audience=_one_user)
def timeline_chart(request, window):
    """The timeline's events over the chart's range, for annotations on the CPU chart."""
    events = timeline.events(window.start, window.end, user=request.user)
    return {"range": window.name, "kinds": timeline.KIND_COLORS, "events": [event.as_json() for event in events]}


def _fleet_status_body(request: HttpRequest) -> dict:
    return _shared_for_a_moment(f"fleet-status:{_audience(request.user)}", lambda: overview.fleet_status(request.user))


@require_GET
def fleet_status(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_fleet_status_body(request))


# What the overview page polls every 5 s: its five charts, the timeline and the fleet
# status in one request, so an open dashboard costs one request a poll instead of seven
# (bench/load.py), and the charts and tables show the same moment.
OVERVIEW_CHARTS = {"cpu": cpu_chart, "uploads": uploads_chart, "bytes": bytes_chart,
                   "outcomes": outcomes_chart, "queues": queues_chart, "timeline": timeline_chart}


@require_GET
def overview_poll(request: HttpRequest) -> HttpResponse:
    try:
        window = _window(request)
    except UnknownRange as error:
        return _error(400, str(error))
    return HttpResponse(_shared_for_a_moment(f"overview:{window.name}:{_one_user(request.user)}",
                                             lambda: _overview_json(request, window)),
                        content_type="application/json")


def _overview_json(request: HttpRequest, window: Window) -> bytes:
    # Encoded once per CHART_CACHE_SECONDS and user: with 500 servers the answer is a few
    # hundred kB (a line and a table row per server), too much to encode again per poll.
    body = {name: view.body(request, window) for name, view in OVERVIEW_CHARTS.items()}
    return json.dumps({**body, "status": _fleet_status_body(request)}, cls=DjangoJSONEncoder).encode()


# The server registry: ops register servers and hand their tokens over once.

def _require_fleet_reader(request) -> None:
    if not roles.sees_all_partners(request.user):
        raise PermissionDenied("Upload servers are visible to ops and engineers.")


@require_GET
def server_list(request: HttpRequest) -> HttpResponse:
    _require_fleet_reader(request)
    return render(request, "monitoring/server_list.html", {
        "servers": UploadServer.objects.all(), "form": RegisterServerForm(),
        "action_form": ServerActionForm()})


@require_http_methods(["POST"])
def server_register(request: HttpRequest) -> HttpResponse:
    require_ops(request)
    form = RegisterServerForm(request.POST)
    if not form.is_valid():
        return render(request, "monitoring/server_list.html", {
            "servers": UploadServer.objects.all(), "form": form, "action_form": ServerActionForm()},
            status=400)
    server, token = servers.register_server(request.user, form.cleaned_data["name"], form.cleaned_data["reason"])
    return _show_token_once(request, server, token)


def _show_token_once(request, server: UploadServer, token: str) -> HttpResponse:
    response = render(request, "monitoring/server_token.html", {"server": server, "token": token})
    response["Cache-Control"] = "no-store"
    return response


def _server_and_reason(request: HttpRequest, name: str, what: str) -> tuple[UploadServer, str | None]:
    """The server an ops action is about, and its reason (None, with a message, when missing)."""
    require_ops(request)
    server = get_object_or_404(UploadServer, name=name)
    form = ServerActionForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Say why the {what}: the reason goes into the audit log.")
        return server, None
    return server, form.cleaned_data["reason"]


@require_POST
def server_rotate_token(request: HttpRequest, name: str) -> HttpResponse:
    server, reason = _server_and_reason(request, name, "token is replaced")
    if reason is None:
        return redirect("monitoring:servers")
    return _show_token_once(request, server, servers.rotate_token(server, request.user, reason))


@require_POST
def server_revoke(request: HttpRequest, name: str) -> HttpResponse:
    server, reason = _server_and_reason(request, name, "server is revoked")
    if reason is not None and servers.revoke_server(server, request.user, reason):
        messages.warning(request, f"{server.name} revoked: its reports are refused from now on.")
    return redirect("monitoring:servers")

