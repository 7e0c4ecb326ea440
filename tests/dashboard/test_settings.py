"""Production settings pass Django's deployment checks; models and migrations agree."""

import json
import os
import subprocess
import sys

from tests import factories
from tests.factories import run_manage as manage

# The proxy range lets a request from 10.x (behind the TLS proxy) count as forwarded.
PRODUCTION_ENV = {**factories.PRODUCTION_ENV, "TRUSTED_PROXY_IPS": "127.0.0.1,10.0.0.0/8"}


def test_check_deploy_is_clean_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}
    result = manage("check", "--deploy", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_without_a_secret_key_the_web_server_refuses_to_load_the_application():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}
    clean_env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    result = subprocess.run(
        [sys.executable, "-c", "import dashboard.wsgi"],
        cwd=factories.REPO,
        capture_output=True,
        text=True,
        env={**clean_env, **env},
    )
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_migration_commands_run_without_any_settings_in_the_environment():
    """A checkout with nothing configured can still check its models against its migrations."""
    result = manage("makemigrations", "--check", "--dry-run", env={})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes detected" in result.stdout


def test_models_and_migrations_agree():
    result = manage("makemigrations", "--check", "--dry-run", env={"DEBUG": "true"})
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


def test_debug_is_off_unless_set():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "DEBUG"}
    result = manage("shell", "-c", "from django.conf import settings; print(settings.DEBUG)", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_without_a_secret_key_an_unset_debug_refuses_to_start():
    """A forgotten DEBUG no longer serves debug pages signed with the public local key."""
    env = {k: v for k, v in PRODUCTION_ENV.items() if k not in ("DEBUG", "SECRET_KEY")}
    result = manage("check", "--deploy", env=env)
    assert result.returncode != 0 and "SECRET_KEY is not set" in result.stderr


def requests_through_production(*requests: str, **env_overrides: str) -> list[dict]:
    """Status and Location of GET /api/v1/openapi.json (no template, so no collected static
    files needed) for each Client(...) argument string."""
    code = "import json; from django.test import Client; out = []\n"
    for arguments in requests:
        code += (
            f"r = Client(HTTP_HOST='upload-ops.example.org', {arguments}).get('/api/v1/openapi.json'); "
            "out.append({'status': r.status_code, 'location': r.get('Location')})\n"
        )
    code += "print(json.dumps(out))"
    env = {**PRODUCTION_ENV, "DATABASE_URL": "sqlite:////tmp/upload-ops-settings-test.sqlite3", **env_overrides}
    env = {k: v for k, v in env.items() if v is not None}
    result = manage("shell", "-c", code, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_x_forwarded_proto_counts_only_from_a_trusted_proxy():
    from_stranger, from_proxy = requests_through_production(
        "REMOTE_ADDR='203.0.113.9', HTTP_X_FORWARDED_PROTO='https'",
        "REMOTE_ADDR='10.1.2.3', HTTP_X_FORWARDED_PROTO='https'",
    )
    # A client reaching the app directly cannot claim HTTPS: it is sent to https:// instead.
    assert from_stranger == {"status": 301, "location": "https://upload-ops.example.org/api/v1/openapi.json"}
    assert from_proxy["status"] == 200


def test_without_trusted_proxies_no_forwarded_header_is_believed():
    assert production_setting_values("SECURE_PROXY_SSL_HEADER") == {
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"]
    }
    (seen,) = requests_through_production(
        "REMOTE_ADDR='127.0.0.1', HTTP_X_FORWARDED_PROTO='https'", TRUSTED_PROXY_IPS=None
    )
    assert seen["status"] == 301


def test_a_malformed_trusted_proxy_list_fails_at_start_naming_the_variable():
    code = "from django.test import Client; Client().get('/accounts/login/')"
    env = {**PRODUCTION_ENV, "TRUSTED_PROXY_IPS": "10.0.0.0/8,not-an-address"}
    result = manage("shell", "-c", code, env=env)
    assert result.returncode != 0 and "TRUSTED_PROXY_IPS" in result.stderr


def test_a_proxy_count_without_the_proxies_addresses_fails_at_start():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "TRUSTED_PROXY_IPS"}
    result = manage("check", env={**env, "TRUSTED_PROXY_COUNT": "1"})
    assert result.returncode != 0 and "TRUSTED_PROXY_COUNT needs TRUSTED_PROXY_IPS" in result.stderr
