"""Login throttling (django-axes): who is counted, and what a locked-out person sees.

Failed logins are counted per user name *from one address*, and per address over all user
names, in the database, so every web process on every machine sees the same count; axes
logs each failure and lockout and keeps them as AccessAttempt rows (shown in the admin).

A user name alone is never locked: five wrong passwords for "ops" from anywhere used to lock
ops out from everywhere, so anyone could keep ops out during an incident. Now a stranger
locks out only their own address. The break-glass commands (`manage.py unlock_login`,
`manage.py temporary_ops_login`) work when the web login does not.
"""

from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

# Temporary ops logins are named so; only they cost the expiry lookup on each request.
TEMPORARY_LOGIN_PREFIX = "temp-ops-"


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
        {
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "address_failure_limit": settings.LOGIN_ADDRESS_FAILURE_LIMIT,
            "lockout_minutes": lockout_minutes,
        },
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


class LoginThrottleHandler(AxesDatabaseHandler):
    """axes' database handler with a limit per kind of count.

    AXES_LOCKOUT_PARAMETERS is [["username", "ip_address"], "ip_address"]: a user name from one
    address is locked after AXES_FAILURE_LIMIT failures, an address (over every user name it
    tried) after LOGIN_ADDRESS_FAILURE_LIMIT. axes compares one number with AXES_FAILURE_LIMIT,
    so an address past its own limit counts as AXES_FAILURE_LIMIT failures.
    """

    def get_failures(self, request, credentials: dict | None = None) -> int:
        user_at_address, address = (
            attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            for attempts in self.get_user_attempts(request, credentials)
        )
        if address >= settings.LOGIN_ADDRESS_FAILURE_LIMIT:
            return max(user_at_address, settings.AXES_FAILURE_LIMIT)
        return user_at_address


class ExpiringModelBackend(ModelBackend):
    """Django's user and password check, refusing a temporary ops login past its end.

    get_user() asks the same question on every request, so a session of an expired temporary
    login ends at its next request.
    """

    def user_can_authenticate(self, user) -> bool:
        if not super().user_can_authenticate(user):
            return False
        if not user.get_username().startswith(TEMPORARY_LOGIN_PREFIX):
            return True
        from core.models import TemporaryLogin

        return TemporaryLogin.objects.filter(user=user, expires_at__gt=timezone.now()).exists()
