"""The dashboard under gunicorn with gunicorn.conf.py, as production runs it: /metrics adds up the
counts of every worker process, and the access log is JSON lines carrying the request id."""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.factories import PRODUCTION_ENV, REPO, free_port, run_manage, wait_until

MAX_REPORTS = 400


@pytest.fixture
def gunicorn(tmp_path):
    database = tmp_path / "db.sqlite3"
    env = {
        **PRODUCTION_ENV,
        "DATABASE_URL": f"sqlite:///{database}",
        "REDIS_URL": "",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",  # plain HTTP on 127.0.0.1, no TLS proxy in front
    }
    assert run_manage("migrate", "--noinput", env=env, timeout_seconds=300).returncode == 0
    multiproc_dir = tmp_path / "prometheus"
    multiproc_dir.mkdir()
    # Left by an earlier run: gunicorn.conf.py empties the folder at start, or it would be added in.
    (multiproc_dir / "counter_1.db").write_bytes(b"\0" * 4096)
    port = free_port()
    clean_env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(
        DJANGO_SETTINGS_MODULE="dashboard.settings",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="2",
        GUNICORN_THREADS="1",
        PROMETHEUS_MULTIPROC_DIR=str(multiproc_dir),
    )
    access_log = tmp_path / "stdout.log"
    with open(access_log, "w") as stdout, open(tmp_path / "stderr.log", "w") as stderr:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "dashboard.wsgi"],
            cwd=REPO,
            env={**clean_env, **env},
            stdout=stdout,
            stderr=stderr,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: _answers(base_url + "/healthz"), 60), (tmp_path / "stderr.log").read_text()
        yield base_url, access_log
    finally:
        process.terminate()
        process.wait(30)


def _answers(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=2).status == 200
    except OSError:
        return False


def post_anonymous_report(base_url: str, request_id: str) -> int:
    request = urllib.request.Request(
        base_url + "/api/v1/reports",
        data=b"{}",
        headers={"Content-Type": "application/json", "X-Request-ID": request_id},
        method="POST",
    )
    try:
        return urllib.request.urlopen(request, timeout=10).status
    except urllib.error.HTTPError as error:
        return error.code


def access_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def pids_that_served_reports(path: Path) -> set[int]:
    return {line["pid"] for line in access_lines(path) if line["path"] == "/api/v1/reports"}


def test_metrics_add_up_the_refused_reports_of_every_worker_process(gunicorn):
    base_url, access_log = gunicorn
    sent = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        while sent < MAX_REPORTS:
            statuses = list(pool.map(lambda n: post_anonymous_report(base_url, f"probe-{n}"), range(sent, sent + 40)))
            assert set(statuses) == {401}
            sent += len(statuses)
            time.sleep(0.2)  # the access log is written after each answer
            if len(pids_that_served_reports(access_log)) >= 2:
                break
    assert len(pids_that_served_reports(access_log)) == 2, "both worker processes should have served reports"

    scrape = urllib.request.urlopen(base_url + "/metrics", timeout=10).read().decode()

    [refused] = [
        line
        for line in scrape.splitlines()
        if line.startswith('uploadops_reports_refused_total{reason="unauthenticated"}')
    ]
    assert float(refused.split()[-1]) == sent


def test_the_access_log_is_json_with_the_request_id(gunicorn):
    base_url, access_log = gunicorn
    assert post_anonymous_report(base_url, "trace-abc-123") == 401
    assert wait_until(lambda: any(line["request_id"] == "trace-abc-123" for line in access_lines(access_log)), 10)
    [line] = [line for line in access_lines(access_log) if line["request_id"] == "trace-abc-123"]
    assert (line["method"], line["path"], line["status_code"]) == ("POST", "/api/v1/reports", 401)
    assert line["logger"] == "gunicorn.access" and line["duration_ms"] >= 0
