"""The dashboard with its PostgreSQL really stopped (not forced errors): a running dashboard
answers the 503 page and the 503 JSON with Retry-After, a reporter keeps its reports, and they
arrive once the database is started again. Uses the throwaway cluster of the gate's tests."""

import http.cookiejar
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import psycopg
import pytest

from tests.factories import PostgresCluster, free_port, postgres_only, star_row
from upload_gate import StaticSource, UploadGate
from upload_gate.reporter import StatusReporter

REPO = Path(__file__).resolve().parents[2]
SETUP = """
from django.contrib.auth import get_user_model
from core.roles import *  # noqa
from monitoring import servers
user = get_user_model().objects.create_superuser("ops", "ops@example.org", "ops-pass")
print(servers.register_server(user, "upload-1", "fault test")[1])
"""


def wait_until(predicate, timeout_seconds=30.0):
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


class LoopbackCookiePolicy(http.cookiejar.DefaultCookiePolicy):
    """Production settings mark cookies Secure; browsers send them to 127.0.0.1 over http
    too (a loopback origin counts as secure), so this test's cookie jar does the same."""

    def return_ok_secure(self, cookie, request):
        return True


def logged_in_browser(url):
    """An opener holding the ops user's session cookie, as a browser would after logging in."""
    jar = http.cookiejar.CookieJar(LoopbackCookiePolicy())
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    browser.open(url + "/accounts/login/", timeout=10).read()
    csrf = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
    form = urllib.parse.urlencode({"username": "ops", "password": "ops-pass", "csrfmiddlewaretoken": csrf})
    browser.open(
        urllib.request.Request(
            url + "/accounts/login/", data=form.encode(), headers={"Referer": url + "/accounts/login/"}
        ),
        timeout=10,
    ).read()
    assert any(cookie.name == "sessionid" for cookie in jar)
    return browser


def status_of(url, opener=None, **kwargs):
    try:
        request = urllib.request.Request(url, **kwargs)
        with (opener or urllib.request.build_opener()).open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()
    except OSError:
        return None, {}, ""


@pytest.fixture
def dashboard(tmp_path):
    cluster = PostgresCluster()
    cluster.start()
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE dash")
    env = {
        **os.environ,
        "DATABASE_URL": cluster.dsn("dash"),
        "DEBUG": "false",  # production error pages
        "SECRET_KEY": "fault-test-" + "k" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
    }

    def run(*args):
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=env,
            check=False,
            capture_output=True,
            text=True,
        )

    collected = run("collectstatic", "--noinput", "-v0")  # pages use the manifest storage with DEBUG off
    assert collected.returncode == 0, collected.stderr[-2000:]
    migrated = run("migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    setup = run("shell", "-c", SETUP)
    assert setup.returncode == 0, setup.stderr[-2000:]
    token = setup.stdout.strip().splitlines()[-1]
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "server.log", "w"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: status_of(url + "/accounts/login/")[0] == 200)
        yield cluster, url, token
    finally:
        server.kill()
        server.wait()
        cluster.remove()


@postgres_only
def test_a_stopped_database_gives_503s_and_the_reporter_keeps_its_reports_until_it_is_back(dashboard):
    cluster, url, token = dashboard
    gate = UploadGate(source=StaticSource([star_row()]), start=False)
    reporter = StatusReporter(gate, url, "upload-1", token, interval_seconds=5, start=False)
    try:
        assert reporter.send_now() == 1, reporter.last_error
        browser = logged_in_browser(url)
        assert status_of(url + "/", browser)[0] == 200
        cluster.stop()
        try:
            status, _, page = status_of(url + "/", browser)
            assert status == 503 and "database" in page.lower()
            status, headers, body = status_of(
                url + "/api/v1/reports",
                data=b"{}",
                method="POST",
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            assert status == 503 and headers["Retry-After"].isdigit()
            assert "database is unreachable" in body
            assert reporter.send_now() == 0
            assert reporter.queued == 1 and reporter.dropped == 0
        finally:
            cluster.start()
        # The kept report and the new one both arrive, in order.
        assert reporter.send_now() == 2, reporter.last_error
        assert (reporter.sent, reporter.queued, reporter.dropped) == (3, 0, 0)
        with psycopg.connect(cluster.dsn("dash")) as conn:
            sequences = conn.execute("SELECT sequence FROM monitoring_serverreport ORDER BY sequence").fetchall()
        assert len(sequences) == 3
    finally:
        reporter.stop(final_report=False)
        gate.close()
