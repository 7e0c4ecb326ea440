"""Login throttling (django-axes): who is counted, and what a locked-out person sees.

Failed logins are counted per user name and per client address in the database, so every
web process on every machine sees the same count; axes logs each failure and lockout and
keeps them as AccessAttempt rows (shown in the admin).
"""

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def client_ip(request: HttpRequest) -> str | None:
    """The address of the browser, behind TRUSTED_PROXY_COUNT reverse proxies.

    Each proxy appends the address it saw to X-Forwarded-For, so the right-most entries are
    trustworthy and anything further left may be forged by the client.
    """
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if len(forwarded) >= proxies and forwarded[-proxies]:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR")


def locked_out(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    lockout_minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    response = render(
        request,
        "registration/locked_out.html",
        {"failure_limit": settings.AXES_FAILURE_LIMIT, "lockout_minutes": lockout_minutes},
        status=429,
    )
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response


class LoginThrottleBackend(AxesStandaloneBackend):
    """axes' check, for logins that come with a request (every login through the web).

    Code that authenticates without one (the test client's login(), a shell) is not a web
    login to throttle; axes alone would refuse it with an exception.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)
