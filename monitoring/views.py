"""The report API (for upload servers, by token) and the server registry (for people)."""

import json
from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, DataError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from core import heartbeat
from core.audit import RefusedChange
from core.login_throttle import client_ip
from core.roles import ops_or_engineer_required, ops_required
from monitoring import enrolment, prometheus, reports, servers
from monitoring.forms import EnrolmentSecretForm, RegisterServerForm, RotateTokenForm, ServerActionForm
from monitoring.models import UploadServer

OPENAPI_PATH = Path(__file__).resolve().parent.parent / "docs" / "status-report.openapi.json"


def _error(status: int, message: str, **details) -> JsonResponse:
    return JsonResponse({"error": message, **details}, status=status)


def _refused(status: int, reason: str, message: str, server: str = "", **details) -> JsonResponse:
    """A refused report: counted for /metrics by reason and logged with the reason."""
    prometheus.count_refused(reason, status, message, server=server, **details)
    return _error(status, message, **details)


# The report API: token-authenticated, for upload servers, not people.


@csrf_exempt
@login_not_required
@require_POST
def post_report(request: HttpRequest) -> JsonResponse:
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > reports.MAX_REPORT_BYTES:
        return _refused(413, prometheus.TOO_LARGE, f"report larger than {reports.MAX_REPORT_BYTES} bytes")
    if request.content_type != "application/json":
        return _refused(415, prometheus.WRONG_CONTENT_TYPE, "send the report as Content-Type: application/json")
    server = reports.authenticate(request.headers.get("Authorization", ""))
    if server is None:
        message = "missing, unknown or revoked token: send Authorization: Bearer <token>"
        response = _refused(401, prometheus.UNAUTHENTICATED, message)
        response["WWW-Authenticate"] = 'Bearer realm="upload-ops reports"'
        return response
    try:
        report = reports.parse_report(request.body)
    except reports.InvalidReport as invalid:
        return _refused(400, prometheus.INVALID, "invalid report", server.name, fields=invalid.errors)
    if report.server_id != server.name:
        message = f"this token belongs to server {server.name}, not {report.server_id}"
        return _refused(403, prometheus.WRONG_SERVER, message, server.name)
    try:
        stored = reports.store_report(server, report)
    except DataError:
        # A value the checks let through but the database refuses: retrying cannot help, and
        # a 503 would block the reporter's in-order queue behind this report for good.
        return _error(400, "invalid report", fields={"body": "a value does not fit the column it is stored in"})
    except DatabaseError:
        message = "the dashboard's database is unavailable; keep the report and retry"
        return _refused(503, prometheus.DATABASE_UNAVAILABLE, message, server.name)
    prometheus.count_ingested("accepted" if stored else "duplicate")
    # The worker cannot say it has stopped: report ingest is one of the places that notice.
    heartbeat.check_now_and_then()
    return JsonResponse({"status": "accepted" if stored else "duplicate", "sequence": report.sequence}, status=202)


@csrf_exempt
@login_not_required
@require_POST
def post_enrol(request: HttpRequest) -> JsonResponse:
    """A host enrols with the fleet enrolment secret and gets its own report token."""
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > enrolment.MAX_ENROLMENT_BYTES:
        return _error(413, f"enrolment larger than {enrolment.MAX_ENROLMENT_BYTES} bytes")
    address = client_ip(request) or "unknown"
    try:
        wait_seconds = enrolment.seconds_throttled(address)
        if wait_seconds:
            response = _error(429, f"too many wrong enrolment secrets from {address}: wait {wait_seconds} s")
            response["Retry-After"] = str(wait_seconds)
            return response
        if not enrolment.enrolment_is_on():
            return _error(403, "enrolment is off: ops create the fleet enrolment secret on the servers page")
        scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not enrolment.secret_is_valid(secret.strip()):
            enrolment.record_failure(address)
            response = _error(401, "missing or wrong enrolment secret: send Authorization: Bearer <secret>")
            response["WWW-Authenticate"] = 'Bearer realm="upload-ops enrolment"'
            return response
        if request.content_type != "application/json":
            return _error(415, "send the enrolment as Content-Type: application/json")
        try:
            enrolled = enrolment.enrol_host(enrolment.parse_enrolment(request.body))
        except enrolment.InvalidEnrolment as invalid:
            return _error(400, "invalid enrolment", fields=invalid.errors)
        except enrolment.EnrolmentRefused as refused:
            return _error(refused.status, str(refused))
    except DatabaseError:
        return _error(503, "the dashboard's database is unavailable; enrol again later")
    body = {
        "server_id": enrolled.server.name,
        "token": enrolled.token,
        "created": enrolled.created,
        "report_path": reverse("monitoring:reports"),
        "deregister_path": reverse("monitoring:deregister"),
    }
    response = JsonResponse(body, status=201 if enrolled.created else 200)
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt
@login_not_required
@require_POST
def post_deregister(request: HttpRequest) -> JsonResponse:
    """The host shuts down in order, with its own token: the server is gone, not silent."""
    if int(request.META.get("CONTENT_LENGTH") or 0) > enrolment.MAX_ENROLMENT_BYTES:
        return _error(413, f"body larger than {enrolment.MAX_ENROLMENT_BYTES} bytes")
    try:
        server = reports.authenticate(request.headers.get("Authorization", ""))
        if server is None:
            response = _error(401, "missing, unknown, revoked or already deregistered token")
            response["WWW-Authenticate"] = 'Bearer realm="upload-ops reports"'
            return response
        reason, problem = _deregister_reason(request)
        if problem:
            return _error(400, "invalid deregistration", fields={"reason": problem})
        enrolment.deregister(server, reason)
    except DatabaseError:
        return _error(503, "the dashboard's database is unavailable; deregister again later")
    return JsonResponse({"status": "deregistered", "server_id": server.name})


def _deregister_reason(request: HttpRequest) -> tuple[str, str]:
    """The optional {"reason": "..."} of a deregistration, or what is wrong with it."""
    if not request.body.strip():
        return "", ""
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return "", "the body must be empty or a JSON object"
    if not isinstance(data, dict) or set(data) - {"reason"}:
        return "", 'the body must be empty or {"reason": "..."}'
    reason = data.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 200 or any(ch in reason for ch in "\r\n"):
        return "", "must be a string of at most 200 characters on one line"
    return reason.strip(), ""


@login_not_required
@require_GET
def openapi(request: HttpRequest) -> HttpResponse:
    return HttpResponse(OPENAPI_PATH.read_text(), content_type="application/json")


# The server registry: ops register servers and hand their tokens over once.


def _server_list(request: HttpRequest, status: int = 200, **forms) -> HttpResponse:
    context = {
        "servers": UploadServer.objects.all(),
        "form": forms.get("form") or RegisterServerForm(),
        "action_form": ServerActionForm(),
        "secret_form": forms.get("secret_form") or EnrolmentSecretForm(),
        "secret": enrolment.current_secret(),
        "earlier_secrets": enrolment.earlier_valid_secrets(),
    }
    return render(request, "monitoring/server_list.html", context, status=status)


@require_GET
@ops_or_engineer_required
def server_list(request: HttpRequest) -> HttpResponse:
    return _server_list(request)


@require_POST
@ops_required
def server_register(request: HttpRequest) -> HttpResponse:
    form = RegisterServerForm(request.POST)
    if form.is_valid():
        try:
            server, token = servers.register_server(
                request.user, form.cleaned_data["name"], form.cleaned_data["reason"]
            )
        except servers.ServerNameTaken as taken:
            form.add_error("name", str(taken))
        else:
            return _show_token_once(request, server, token)
    return _server_list(request, status=400, form=form)


def _show_token_once(request, server: UploadServer, token: str) -> HttpResponse:
    response = render(request, "monitoring/server_token.html", {"server": server, "token": token})
    response["Cache-Control"] = "no-store"
    return response


def _server_and_form(request: HttpRequest, name: str, what: str, form_class=ServerActionForm):
    """The server an ops action is about, and its form (None, with a message, when invalid)."""
    server = get_object_or_404(UploadServer, name=name)
    form = form_class(request.POST)
    if not form.is_valid():
        messages.error(request, f"Say why the {what}: the reason goes into the audit log.")
        return server, None
    return server, form.cleaned_data


@require_POST
@ops_required
def server_rotate_token(request: HttpRequest, name: str) -> HttpResponse:
    server, data = _server_and_form(request, name, "token is replaced", RotateTokenForm)
    if data is None:
        return redirect("monitoring:servers")
    try:
        token = servers.rotate_token(server, request.user, data["reason"], replaces_prefix=data["token_prefix"])
    except servers.TokenNotReplaced as refused:
        messages.error(request, str(refused))
        return redirect("monitoring:servers")
    return _show_token_once(request, server, token)


@require_POST
@ops_required
def server_revoke(request: HttpRequest, name: str) -> HttpResponse:
    server, data = _server_and_form(request, name, "server is revoked")
    if data is not None and servers.revoke_server(server, request.user, data["reason"]):
        messages.warning(request, f"{server.name} revoked: its reports are refused from now on.")
    return redirect("monitoring:servers")


@require_POST
@ops_required
def enrolment_secret_rotate(request: HttpRequest) -> HttpResponse:
    """Create the fleet enrolment secret, or replace it; the new one is shown once."""
    form = EnrolmentSecretForm(request.POST)
    if not form.is_valid():
        return _server_list(request, status=400, secret_form=form)
    try:
        secret = enrolment.rotate_secret(
            request.user, form.cleaned_data["reason"], form.cleaned_data["previous_valid_seconds"]
        )
    except RefusedChange as refused:
        form.add_error(None, str(refused))
        return _server_list(request, status=409, secret_form=form)
    response = render(request, "monitoring/enrolment_secret.html", {"secret": secret})
    response["Cache-Control"] = "no-store"
    return response
