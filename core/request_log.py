"""What every log line of a request says about it: its id and who made it.

RequestIdMiddleware, first in MIDDLEWARE, takes the id the load balancer or proxy sent
(X-Request-ID, else the ALB's X-Amzn-Trace-Id) or makes one, answers it in X-Request-ID, and
keeps the request for RequestContextFilter, which adds `request_id` and `user` to each record
logged while the request runs (the JSON logs show them as fields: settings.LOGGING).
"""

import logging
import re
import uuid
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse

REQUEST_ID_HEADER = "X-Request-ID"
# What a client may choose as its request id: short, and nothing that could forge a log line.
_ACCEPTED_ID = re.compile(r"^[A-Za-z0-9._:;=@/+-]{1,200}$")

_current_request: ContextVar[HttpRequest | None] = ContextVar("upload_ops_request", default=None)


def request_id_of(request: HttpRequest) -> str:
    for header in (REQUEST_ID_HEADER, "X-Amzn-Trace-Id"):
        candidate = request.headers.get(header, "")
        if _ACCEPTED_ID.match(candidate):
            return candidate
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.request_id = request_id_of(request)
        # Kept until the response is closed (forget_request), not reset on the way out: Django
        # logs a 4xx or 5xx ("Bad Request: /api/v1/reports") after the middleware has returned.
        _current_request.set(request)
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request.request_id
        return response


def forget_request(**kwargs) -> None:
    """request_finished: what this thread logs next belongs to no request (core.apps connects it)."""
    _current_request.set(None)


def current_user_name(request: HttpRequest) -> str:
    """The signed-in user's name if the request has already looked the user up, else "".

    Reads the user Django's authentication middleware cached on the request: looking it up
    here would query the database inside logging, possibly while logging a database failure.
    """
    user = request.__dict__.get("_cached_user")
    if user is None or not user.is_authenticated:
        return ""
    return user.get_username()


class RequestContextFilter(logging.Filter):
    """Adds request_id and user to every record ("" outside a request, e.g. in the worker)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = _current_request.get()
        if not hasattr(record, "request_id"):
            record.request_id = getattr(request, "request_id", "") if request is not None else ""
        if not hasattr(record, "user"):
            record.user = current_user_name(request) if request is not None else ""
        return True
