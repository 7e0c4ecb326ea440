"""Production settings read from the environment: the deploy check of DASHBOARD_BASE_URL, the
shared cache, ADMINS, JSON logs, Sentry, and a README table that names every variable read."""

import ast
import gzip
import json
import re
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.factories import PRODUCTION_ENV, REPO, free_port, run_manage

SQLITE_ENV = {
    **PRODUCTION_ENV,
    "DATABASE_URL": "sqlite:////tmp/upload-ops-production-settings-test.sqlite3",
    "REDIS_URL": "",
    # Pages in production name hashed static files: the manifest collectstatic writes.
    "STATIC_ROOT": "/tmp/upload-ops-production-settings-test-static",
}


def setting_values(env: dict, *names: str) -> dict:
    code = (
        "import json; from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n, None) for n in {list(names)!r}}}))"
    )
    result = run_manage("shell", "-c", code, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---- DASHBOARD_BASE_URL -----------------------------------------------------------------


@pytest.mark.parametrize("base_url", [None, "http://127.0.0.1:8000", "upload-ops.example.org"])
def test_check_deploy_fails_without_a_public_dashboard_base_url(base_url):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "DASHBOARD_BASE_URL"}
    if base_url is not None:
        env["DASHBOARD_BASE_URL"] = base_url
    result = run_manage("check", "--deploy", env=env)
    assert result.returncode != 0
    assert "upload_ops.E001" in result.stderr and "DASHBOARD_BASE_URL" in result.stderr


def test_a_local_run_needs_no_dashboard_base_url():
    local = {"DEBUG": "true"}  # what make run sets
    assert setting_values(local, "DASHBOARD_BASE_URL") == {"DASHBOARD_BASE_URL": "http://127.0.0.1:8000"}


# ---- the cache ----------------------------------------------------------------------------


def test_the_cache_is_redis_when_redis_url_is_set_and_per_process_otherwise():
    with_redis = setting_values(PRODUCTION_ENV, "CACHES")["CACHES"]["default"]
    assert with_redis["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert with_redis["LOCATION"] == PRODUCTION_ENV["REDIS_URL"]
    without = {k: v for k, v in PRODUCTION_ENV.items() if k != "REDIS_URL"}
    assert setting_values(without, "CACHES")["CACHES"]["default"]["BACKEND"].endswith("LocMemCache")


@pytest.fixture
def redis_url():
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    import redis

    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield url
    server.terminate()
    server.wait(10)


def test_a_chart_cached_by_one_web_process_is_served_by_another(redis_url):
    env = {**SQLITE_ENV, "REDIS_URL": redis_url}
    store = "from django.core.cache import cache; cache.set('chart:cpu:1h:all', {'built_by': 'process one'}, 30)"
    assert run_manage("shell", "-c", store, env=env).returncode == 0
    read = "from django.core.cache import cache; print(cache.get('chart:cpu:1h:all'))"
    result = run_manage("shell", "-c", read, env=env)
    assert result.stdout.strip().splitlines()[-1] == "{'built_by': 'process one'}"


# ---- who hears about errors ---------------------------------------------------------------


def test_admins_and_server_email_come_from_the_environment():
    env = {**PRODUCTION_ENV, "ADMINS": "Ops On-call <oncall@example.org>,lead@example.org"}
    env["SERVER_EMAIL"] = "upload-ops-errors@example.org"
    values = setting_values(env, "ADMINS", "SERVER_EMAIL")
    assert values == {
        "ADMINS": [["Ops On-call", "oncall@example.org"], ["", "lead@example.org"]],
        "SERVER_EMAIL": "upload-ops-errors@example.org",
    }


def test_a_malformed_admins_entry_fails_at_start_naming_the_variable():
    result = run_manage("check", env={**PRODUCTION_ENV, "ADMINS": "oncall at example.org"})
    assert result.returncode != 0
    assert "ADMINS" in result.stderr


class EnvelopeCatcher(BaseHTTPRequestHandler):
    """Stands in for Sentry: keeps what the SDK posts."""

    received: list[bytes] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "br":
            import brotli

            body = brotli.decompress(body)
        self.received.append(body)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_with_a_sentry_dsn_an_unhandled_error_reaches_the_error_tracker():
    EnvelopeCatcher.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), EnvelopeCatcher)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        **PRODUCTION_ENV,
        "SENTRY_DSN": f"http://publickey@127.0.0.1:{server.server_port}/1",
        # Nothing listens there: the page fails with an OperationalError.
        "DATABASE_URL": f"postgres://ops@127.0.0.1:{free_port()}/uploadops",
    }
    code = (
        "import sentry_sdk; from django.test import Client; "
        "c = Client(HTTP_HOST='upload-ops.example.org', HTTP_X_FORWARDED_PROTO='https', "
        "raise_request_exception=False); "
        # A session cookie: the login check must read the session from the database.
        "c.cookies['sessionid'] = 'a' * 32; r = c.get('/partners/'); print(r.status_code); sentry_sdk.flush(5)"
    )
    try:
        result = run_manage("shell", "-c", code, env=env)
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "503", result.stdout + result.stderr
    assert any(b"OperationalError" in envelope for envelope in EnvelopeCatcher.received)


# ---- logs ---------------------------------------------------------------------------------


def test_production_logs_are_json_with_request_id_user_and_a_refused_reports_reason():
    code = (
        "from django.test import Client; from django.contrib.auth import get_user_model; "
        "c = Client(HTTP_HOST='upload-ops.example.org', HTTP_X_FORWARDED_PROTO='https'); "
        "c.post('/api/v1/reports', '{}', content_type='application/json', HTTP_X_REQUEST_ID='req-42'); "
        "c.force_login(get_user_model().objects.create_user('ivy-ops')); c.get('/partners/no-such-partner/')"
    )
    path = Path(SQLITE_ENV["DATABASE_URL"].removeprefix("sqlite:///"))
    path.unlink(missing_ok=True)
    assert run_manage("migrate", "--noinput", env=SQLITE_ENV, timeout_seconds=300).returncode == 0
    assert run_manage("collectstatic", "--noinput", env=SQLITE_ENV, timeout_seconds=300).returncode == 0
    result = run_manage("shell", "-c", code, env=SQLITE_ENV)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]

    [refusal] = [line for line in lines if line["logger"] == "monitoring.reports"]
    assert refusal["level"] == "WARNING"
    assert refusal["reason"] == "unauthenticated" and refusal["status_code"] == 401
    assert refusal["request_id"] == "req-42"
    assert re.match(r"\d{4}-\d\d-\d\dT", refusal["time"])
    [not_found] = [line for line in lines if line["message"].startswith("Not Found")]
    assert not_found["user"] == "ivy-ops"
    assert re.fullmatch(r"[0-9a-f]{32}", not_found["request_id"])


def test_local_logs_are_plain_lines():
    code = "import logging; logging.getLogger('monitoring.reports').warning('report refused: test')"
    result = run_manage("shell", "-c", code, env={"DEBUG": "true"})  # what make run sets
    [line] = [line for line in result.stderr.splitlines() if "report refused: test" in line]
    assert not line.startswith("{")
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ WARNING monitoring.reports: report refused: test", line)


# ---- every variable documented ------------------------------------------------------------


def variables_read(path: Path) -> set[str]:
    """Names passed as literals to env.<cast>(...) or os.environ.get / setdefault / [...]."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "env":
                names.add(node.args[0].value)
            elif isinstance(func, ast.Attribute) and ast.unparse(func.value) == "os.environ":
                names.add(node.args[0].value)
    return {name for name in names if isinstance(name, str) and name.isupper()}


def variables_documented() -> set[str]:
    """The backticked names in the first column of the README's configuration table; brace
    alternatives (`METRICS_{MINUTE,HOUR}_RETENTION_DAYS`) count as each name."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Configuration") :]
    section = section[: section.index("\n## ", 1)]
    names = set()
    for row in re.findall(r"^\| (.+?) \|", section, re.M):
        for code in re.findall(r"`([^`]+)`", row):
            braces = re.search(r"\{([^}]+)\}", code)
            alternatives = braces.group(1).split(",") if braces else [""]
            for alternative in alternatives:
                name = code.replace(braces.group(0), alternative) if braces else code
                if re.fullmatch(r"[A-Z][A-Z0-9_]+", name):
                    names.add(name)
    return names


def test_the_readme_table_names_every_variable_the_settings_and_gunicorn_read():
    read = variables_read(REPO / "dashboard" / "settings.py") | variables_read(REPO / "gunicorn.conf.py")
    documented = variables_documented()
    assert len(read) > 40
    assert read - documented == set(), "read but not in the README's configuration table"
    assert documented - read == set(), "in the README's table but read by nothing"
