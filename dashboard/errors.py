"""The 500 handler: a failed database connection answers 503 saying so, not a stack trace.

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
from django.template import loader

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
