"""Production settings pass Django's deployment checks; models and migrations agree."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "x7!k2p#q9v@m4w$z8r&t1y^u6i*o3e(a5s)d0f_g-h+j=k~l<n>b?c",
    "ALLOWED_HOSTS": "upload-ops.example.org",
    "DATABASE_URL": "postgres://ops@db.internal:5432/uploadops",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "EMAIL_URL": "smtp+tls://alerts:secret@smtp.example.org:587",
}


def manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    # Only the machine's basics: the test run's own settings (and Playwright's
    # DJANGO_ALLOW_ASYNC_UNSAFE) must not leak into "production".
    clean_env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**clean_env, "DJANGO_SETTINGS_MODULE": "dashboard.settings", **env},
    )


def test_check_deploy_is_clean_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_models_and_migrations_agree():
    result = manage("makemigrations", "--check", "--dry-run", env={})
    assert result.returncode == 0, result.stdout + result.stderr


def production_setting_values(*names: str) -> dict:
    code = (
        "import json; from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n, None) for n in {list(names)!r}}}))"
    )
    result = manage("shell", "-c", code, env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_cookies_are_secure_and_http_only():
    values = production_setting_values(
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SESSION_COOKIE_HTTPONLY",
        "SESSION_COOKIE_SAMESITE",
        "CSRF_COOKIE_SAMESITE",
    )
    assert values == {
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "CSRF_COOKIE_SAMESITE": "Lax",
    }


def test_production_sends_strict_security_headers():
    values = production_setting_values(
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_SSL_REDIRECT",
        "X_FRAME_OPTIONS",
        "SECURE_REFERRER_POLICY",
        "SECURE_CONTENT_TYPE_NOSNIFF",
        "SECURE_PROXY_SSL_HEADER",
    )
    assert values["SECURE_HSTS_SECONDS"] >= 365 * 24 * 3600
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["X_FRAME_OPTIONS"] == "DENY"
    assert values["SECURE_REFERRER_POLICY"] == "same-origin"
    assert values["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_a_production_response_carries_the_security_headers():
    """A request through the production middleware stack, as a browser behind the TLS proxy sends it."""
    code = (
        "import json; from django.test import Client; "
        "c = Client(HTTP_X_FORWARDED_PROTO='https', HTTP_HOST='upload-ops.example.org'); "
        # The public OpenAPI file: no template, so no collected static files are needed.
        "r = c.get('/api/v1/openapi.json'); "
        "print(json.dumps({'status': r.status_code, 'hsts': r.get('Strict-Transport-Security'), "
        "'frame': r.get('X-Frame-Options'), 'nosniff': r.get('X-Content-Type-Options'), "
        "'referrer': r.get('Referrer-Policy')}))"
    )
    env = {**PRODUCTION_ENV, "DATABASE_URL": "sqlite:////tmp/upload-ops-settings-test.sqlite3"}
    result = manage("shell", "-c", code, env=env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["status"] == 200
    assert seen["hsts"].startswith("max-age=31536000") and "includeSubDomains" in seen["hsts"]
    assert seen["frame"] == "DENY"
    assert seen["nosniff"] == "nosniff"
    assert seen["referrer"] == "same-origin"


def test_plain_http_is_redirected_to_https_in_production():
    code = (
        "from django.test import Client; "
        "print(Client(HTTP_HOST='upload-ops.example.org').get('/accounts/login/')['Location'])"
    )
    env = {**PRODUCTION_ENV, "DATABASE_URL": "sqlite:////tmp/upload-ops-settings-test.sqlite3"}
    result = manage("shell", "-c", code, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "https://upload-ops.example.org/accounts/login/"
