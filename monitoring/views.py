"""The report API (for upload servers, by token) and the server registry (for people)."""

from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from core.roles import ops_or_engineer_required, ops_required
from monitoring import reports, servers
from monitoring.forms import RegisterServerForm, ServerActionForm
from monitoring.models import UploadServer

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
    return JsonResponse({"status": "accepted" if stored else "duplicate", "sequence": report.sequence}, status=202)


@login_not_required
@require_GET
def openapi(request: HttpRequest) -> HttpResponse:
    return HttpResponse(OPENAPI_PATH.read_text(), content_type="application/json")


# The server registry: ops register servers and hand their tokens over once.


@require_GET
@ops_or_engineer_required
def server_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "monitoring/server_list.html",
        {"servers": UploadServer.objects.all(), "form": RegisterServerForm(), "action_form": ServerActionForm()},
    )


@require_POST
@ops_required
def server_register(request: HttpRequest) -> HttpResponse:
    form = RegisterServerForm(request.POST)
    if not form.is_valid():
        return render(
            request,
            "monitoring/server_list.html",
            {"servers": UploadServer.objects.all(), "form": form, "action_form": ServerActionForm()},
            status=400,
        )
    server, token = servers.register_server(request.user, form.cleaned_data["name"], form.cleaned_data["reason"])
    return _show_token_once(request, server, token)


def _show_token_once(request, server: UploadServer, token: str) -> HttpResponse:
    response = render(request, "monitoring/server_token.html", {"server": server, "token": token})
    response["Cache-Control"] = "no-store"
    return response


def _server_and_reason(request: HttpRequest, name: str, what: str) -> tuple[UploadServer, str | None]:
    """The server an ops action is about, and its reason (None, with a message, when missing)."""
    server = get_object_or_404(UploadServer, name=name)
    form = ServerActionForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Say why the {what}: the reason goes into the audit log.")
        return server, None
    return server, form.cleaned_data["reason"]


@require_POST
@ops_required
def server_rotate_token(request: HttpRequest, name: str) -> HttpResponse:
    server, reason = _server_and_reason(request, name, "token is replaced")
    if reason is None:
        return redirect("monitoring:servers")
    return _show_token_once(request, server, servers.rotate_token(server, request.user, reason))


@require_POST
@ops_required
def server_revoke(request: HttpRequest, name: str) -> HttpResponse:
    server, reason = _server_and_reason(request, name, "server is revoked")
    if reason is not None and servers.revoke_server(server, request.user, reason):
        messages.warning(request, f"{server.name} revoked: its reports are refused from now on.")
    return redirect("monitoring:servers")
