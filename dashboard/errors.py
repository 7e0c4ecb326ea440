"""Error answers people can act on. 403, 404 and 405 are pages with the navigation that say
what happened and where to go (the JSON APIs answer JSON); the 500 handler answers 503 for a
failed database connection, not a stack trace.

An unreachable database is an outage, not a bug. Django calls handler500 inside the `except`
that caught the failure (whether it came from a view or from a middleware reading the session),
so the exception is still in sys.exc_info(). Pages show templates/503.html; the JSON APIs
(/api/...) answer a JSON error with Retry-After, which upload_gate's StatusReporter treats as
"keep the report and send it again later". Both templates are rendered without a request
context: the context processors would query the database again.
"""

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template import loader
from django.urls import Resolver404, resolve

RETRY_AFTER_SECONDS = 30
UNREACHABLE_MESSAGE = "The database is unreachable; nothing was stored. Try again later."
SERVER_ERROR_MESSAGE = "Unexpected server error; nothing was stored."


def server_error(request: HttpRequest) -> HttpResponse:
    if _database_unreachable():
        response = _answer(request, 503, UNREACHABLE_MESSAGE, "503.html")
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return _answer(request, 500, SERVER_ERROR_MESSAGE, "500.html")


def _database_unreachable() -> bool:
    return isinstance(sys.exc_info()[1], (OperationalError, InterfaceError))


def _answer(request: HttpRequest, status: int, message: str, template: str) -> HttpResponse:
    if "/api/" in request.path:
        return JsonResponse({"error": message}, status=status)
    return HttpResponse(loader.render_to_string(template), status=status)


def _is_api(request: HttpRequest) -> bool:
    return "/api/" in request.path


def permission_denied(request: HttpRequest, exception=None) -> HttpResponse:
    reason = str(exception or "") or "Your role does not allow this."
    if _is_api(request):
        return JsonResponse({"error": reason}, status=403)
    return render(request, "403.html", {"reason": reason}, status=403)


def page_not_found(request: HttpRequest, exception=None) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"error": f"no such address: {request.path}"}, status=404)
    return render(request, "404.html", status=404)


def _page_of_form(request: HttpRequest) -> str:
    """For a GET of a form's address (/partners/x/limits/), the page the form is on (/partners/x/),
    with the query kept; "" when there is none."""
    if request.method != "GET" or _is_api(request):
        return ""
    parent = request.path.rstrip("/").rsplit("/", 1)[0] + "/"
    try:
        resolve(parent)
    except Resolver404:
        return ""
    query = request.META.get("QUERY_STRING", "")
    return f"{parent}?{query}" if query else parent


class MethodNotAllowedPage:
    """Django's require_POST answers an empty 405: say instead which methods the address takes
    (a bookmarked or reloaded form address is the usual way here) and link back."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code != 405 or response.content:
            return response
        allowed = response.get("Allow", "")
        page = _page_of_form(request)
        if page:
            # A reload of a refused form's address (its errors showed there) goes back to its page.
            return redirect(page)
        if _is_api(request):
            answer = JsonResponse({"error": f"{request.method} is not allowed here; use {allowed}"}, status=405)
        else:
            answer = render(request, "405.html", {"allowed": allowed}, status=405)
        answer["Allow"] = allowed
        return answer
