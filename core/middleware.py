"""Request and response rules every page follows: forwarded headers only from our proxies,
no caching of what a logged-in user was shown, and sessions that end when left idle."""

import ipaddress
import time

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control

FORWARDED_HEADERS = ("HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_HOST")


def trusted_proxy_networks(entries: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip()]
    except ValueError as error:
        raise ImproperlyConfigured(f"TRUSTED_PROXY_IPS: {error}") from error


class ForwardedHeadersFromTrustedProxies:
    """Drop X-Forwarded-* unless the peer is one of TRUSTED_PROXY_IPS.

    Otherwise any client reaching the app could claim HTTPS (SECURE_PROXY_SSL_HEADER) or an
    address of its choosing (the login throttle). First in MIDDLEWARE, before either reads them.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.networks = trusted_proxy_networks(settings.TRUSTED_PROXY_IPS)

    def _from_trusted_proxy(self, request: HttpRequest) -> bool:
        try:
            peer = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            return False
        return any(peer in network for network in self.networks)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not self._from_trusted_proxy(request):
            for header in FORWARDED_HEADERS:
                request.META.pop(header, None)
        return self.get_response(request)


class PrivatePagesAreNotCached:
    """What a logged-in user was shown stays out of shared caches and the browser's disk:
    `Cache-Control: private, no-store` (a back button after logout shows nothing)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            response.headers.pop("Cache-Control", None)
            patch_cache_control(response, private=True, no_store=True)
        return response


# A session is saved again (its expiry moved SESSION_COOKIE_AGE ahead) at most this often: a
# save on every request would be a database write per poll of every open dashboard.
SESSION_REFRESH_SECONDS = 60
_REFRESHED_AT = "_refreshed_at"


class SessionIdleTimeout:
    """Sessions end SESSION_COOKIE_AGE after the last request, not after login.

    Like SESSION_SAVE_EVERY_REQUEST, but writing the session at most once a minute. After
    AuthenticationMiddleware. An open dashboard polls, so it counts as in use.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        session = getattr(request, "session", None)
        user = getattr(request, "user", None)
        if session is not None and user is not None and user.is_authenticated:
            now = int(time.time())
            if now - session.get(_REFRESHED_AT, 0) >= SESSION_REFRESH_SECONDS:
                session[_REFRESHED_AT] = now  # marks it modified: SessionMiddleware saves it
        return response


def session_fresh_at_login(sender, request, user, **kwargs) -> None:
    """A session saved at login needs no second save on its first request (user_logged_in)."""
    if request is not None and hasattr(request, "session"):
        request.session[_REFRESHED_AT] = int(time.time())
