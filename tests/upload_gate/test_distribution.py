"""`pip install ./upload_gate` into a fresh virtualenv: the library and the `upload-gate`
command work there without Django (and without the rest of this repository)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.factories import create_sqlite_table, insert_sqlite_row

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def venv():
    """A fresh virtualenv (no system site packages) with the distribution installed from a
    copy of the folder (pip builds in the source tree; the worktree stays clean)."""
    root = Path(tempfile.mkdtemp(prefix="ugd-"))
    source = root / "src" / "upload_gate"
    shutil.copytree(REPO / "upload_gate", source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    bin_dir = root / "venv" / "bin"
    install = subprocess.run(
        [str(bin_dir / "pip"), "install", "--quiet", "--disable-pip-version-check", str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    yield bin_dir
    shutil.rmtree(root, ignore_errors=True)


def run_in(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    # cwd outside the repository, and no PYTHONPATH: only what the venv holds is importable.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "DJANGO"))}
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, cwd=cwd, env=env)


def test_the_venv_has_the_gate_and_not_django(venv, tmp_path):
    probe = run_in(venv, str(venv / "python"), "-c", "import django", cwd=tmp_path)
    assert probe.returncode != 0 and "No module named 'django'" in probe.stderr
    probe = run_in(
        venv,
        str(venv / "python"),
        "-c",
        "import upload_gate, upload_gate.client, upload_gate.server; print(upload_gate.__file__)",
        cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr
    assert str(REPO) not in probe.stdout  # the installed copy, not this repository


def test_upload_gate_check_prints_what_it_would_enforce_per_client(venv, tmp_path):
    db = tmp_path / "limits.sqlite3"
    create_sqlite_table(db)
    insert_sqlite_row(db, client_id="*", max_concurrent_uploads=8, live_server_count=2, version=3)
    insert_sqlite_row(db, client_id="theirstory", requests_per_minute=120, burst=10, version=4)
    insert_sqlite_row(db, client_id="archive-co", paused=1, pause_reason="storage migration", version=5)
    result = run_in(venv, str(venv / "upload-gate"), "check", f"sqlite:///{db}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "version 5, 2 live server(s)" in out
    assert "theirstory\n  fleet-wide:   requests_per_minute=120, burst=10" in out
    assert "  this server:  requests_per_minute=60, burst=5" in out  # half of the fleet's, per server
    assert "max_concurrent_uploads=4" in out  # the `*` row's share
    assert "PAUSED: storage migration" in out
    assert "0 bad row(s)" in out


def test_upload_gate_check_names_a_bad_row_and_exits_1(venv, tmp_path):
    db = tmp_path / "limits.sqlite3"
    create_sqlite_table(db)
    insert_sqlite_row(db, client_id="*", max_concurrent_uploads=8)
    insert_sqlite_row(db, client_id="theirstory", requests_per_minute="lots")
    result = run_in(venv, str(venv / "upload-gate"), "check", f"sqlite:///{db}", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 bad row(s)" in result.stdout and "BAD row 'theirstory'" in result.stdout
    assert "\n* (every client without a row of its own)\n" in result.stdout  # the rest still applies


def test_upload_gate_check_says_when_the_table_cannot_be_read(venv, tmp_path):
    result = run_in(venv, str(venv / "upload-gate"), "check", f"sqlite:///{tmp_path / 'missing.sqlite3'}", cwd=tmp_path)
    assert result.returncode == 2 and "cannot read upload_limits" in result.stderr


def test_the_installed_command_serves_the_installed_client(venv, tmp_path):
    db = tmp_path / "limits.sqlite3"
    create_sqlite_table(db)
    insert_sqlite_row(db, client_id="*", max_concurrent_uploads=1)
    sock = Path(tempfile.mkdtemp(prefix="ugv-")) / "gate.sock"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "DJANGO"))}
    server = subprocess.Popen(
        [str(venv / "upload-gate"), "serve", f"sqlite:///{db}", "--socket", str(sock)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not sock.exists() and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.05)
        code = (
            "from upload_gate.client import SidecarClient\n"
            f"c = SidecarClient({str(sock)!r})\n"
            "a, b = c.admit('p', 10), c.admit('p', 10)\n"
            "print(a['source'], a['admitted'], b['admitted'], b['limit'], c.release(a['lease_id'])['released'])\n"
        )
        result = run_in(venv, str(venv / "python"), "-c", code, cwd=tmp_path)
        assert result.stdout.split() == ["sidecar", "True", "False", "max_concurrent_uploads", "True"], result.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=30)[0]
        shutil.rmtree(sock.parent, ignore_errors=True)
    assert server.returncode == 0, output
    assert not sock.exists()  # removed on an orderly stop
