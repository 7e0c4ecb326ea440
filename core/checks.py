"""Deployment checks of our own settings (`manage.py check --deploy`)."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


@register(Tags.security, deploy=True)
def dashboard_base_url_is_set(app_configs=None, **kwargs) -> list[Error]:
    """Alert and heartbeat emails link into the dashboard through DASHBOARD_BASE_URL: in
    production a missing or local address sends every engineer's click nowhere."""
    if settings.DEBUG:
        return []
    url = settings.DASHBOARD_BASE_URL
    parts = urlsplit(url)
    if not url or parts.scheme not in ("http", "https") or not parts.hostname:
        problem = "is not set" if not url else f"is not an absolute http(s) URL ({url!r})"
    elif parts.hostname in LOCAL_HOSTS:
        problem = f"points at this machine ({url!r})"
    else:
        return []
    return [
        Error(
            f"DASHBOARD_BASE_URL {problem}: links in alert emails would lead nowhere.",
            hint="Set DASHBOARD_BASE_URL to the dashboard's public address, e.g. https://upload-ops.example.org.",
            id="upload_ops.E001",
        )
    ]


@register(Tags.security, deploy=True)
def secret_key_is_set(app_configs=None, **kwargs) -> list[Error]:
    """Without DEBUG the settings leave SECRET_KEY empty when it is not set, so that offline
    commands run; serving refuses to start, and a deploy check says so before that."""
    try:
        if settings.SECRET_KEY:
            return []
    except ImproperlyConfigured:  # Django refuses to read an empty key
        pass
    return [
        Error(
            "SECRET_KEY is not set: the dashboard refuses to serve without it.",
            hint="Set SECRET_KEY in the environment to a long random value (docs/deploy.md).",
            id="upload_ops.E002",
        )
    ]
