"""The thin Python client against a real sidecar process: decisions, leases, keep-alive,
and failing open or closed (and saying which) when the sidecar cannot be reached."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.factories import create_sqlite_table, insert_sqlite_row, star_row
from upload_gate.client import SidecarClient, SidecarRequestError
from upload_gate.server import GateService, SidecarServer

REPO = Path(__file__).resolve().parents[2]


class SidecarProcess:
    """`python -m upload_gate serve` on a socket of its own, reading a SQLite table."""

    def __init__(self, db: Path, sock: Path, *extra: str) -> None:
        self.db, self.sock, self.extra = db, sock, extra
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        command = [sys.executable, "-m", "upload_gate", "serve", f"sqlite:///{self.db}", "--socket", str(self.sock)]
        self.process = subprocess.Popen(
            [*command, "--poll-interval-seconds", "0.2", *self.extra],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.process.poll() is None:
            if _answers(self.sock):  # not just exists(): a killed sidecar leaves its file behind
                return
            time.sleep(0.05)
        raise RuntimeError(f"sidecar did not start: {self.process.communicate(timeout=5)[0]}")

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        assert self.process is not None
        self.process.send_signal(sig)
        output = self.process.communicate(timeout=30)[0]
        code, self.process = self.process.returncode, None
        return code, output


def _answers(sock: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(sock))
        return True
    except OSError:
        return False
    finally:
        probe.close()


@pytest.fixture
def table(tmp_path):
    db = tmp_path / "limits.sqlite3"
    create_sqlite_table(db)
    insert_sqlite_row(db, client_id="*", max_concurrent_uploads=2, requests_per_minute=600, burst=50)
    return db


@pytest.fixture
def sock_dir():
    path = Path(tempfile.mkdtemp(prefix="ugc-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def sidecar_process(table, sock_dir):
    process = SidecarProcess(table, sock_dir / "gate.sock")
    process.start()
    yield process
    if process.process is not None:
        process.stop(signal.SIGKILL)


def test_decisions_and_leases_through_a_real_sidecar(sidecar_process):
    client = SidecarClient(str(sidecar_process.sock))
    first = client.admit("theirstory", 1000)
    assert first["source"] == "sidecar" and first["admitted"] and first["lease_id"]
    assert first["headers"]["RateLimit-Policy"].startswith('"rpm";q=600;w=60')
    assert client.admit("theirstory", 1000)["admitted"]
    third = client.admit("theirstory", 1000)
    assert (third["admitted"], third["status"], third["limit"]) == (False, 429, "max_concurrent_uploads")
    assert third["headers"]["Retry-After"] == str(third["retry_after_seconds"])
    assert client.renew(first["lease_id"]) == {"renewed": True, "expires_in_seconds": 900, "source": "sidecar"}
    assert client.release(first["lease_id"], "completed") == {"released": True, "source": "sidecar"}
    assert client.release(first["lease_id"], "completed")["released"] is False
    assert client.admit("theirstory", 1000)["admitted"]
    assert client.health()["status"] == "ok" and client.health()["http_status"] == 200
    assert client.failures == 0


def test_worker_processes_share_the_hosts_limit(sidecar_process):
    # Another worker process holds both of the host's slots: this one is throttled.
    code = (
        "import sys, time\n"
        "from upload_gate.client import SidecarClient\n"
        f"c = SidecarClient({str(sidecar_process.sock)!r})\n"
        "print(sum(c.admit('theirstory', 1)['admitted'] for _ in range(3)), flush=True)\n"
        "sys.stdin.readline()\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    worker = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout.readline().strip() == "2"
        decision = SidecarClient(str(sidecar_process.sock)).admit("theirstory", 1)
        assert decision["admitted"] is False and decision["source"] == "sidecar"
    finally:
        worker.communicate("\n", timeout=30)


def test_one_connection_is_kept_alive_for_many_requests(sidecar_process):
    client = SidecarClient(str(sidecar_process.sock))
    for _ in range(50):
        lease_id = client.admit("p", 1)["lease_id"]
        client.release(lease_id)
    connection = client._local.connection
    for _ in range(50):
        client.release(client.admit("p", 1)["lease_id"])
    assert client._local.connection is connection  # the same socket all along


def test_a_release_sent_without_waiting_frees_its_slot_for_the_next_admit(sidecar_process):
    # The host's limit is 2 concurrent uploads: after each pair a slot must be free again.
    client = SidecarClient(str(sidecar_process.sock))
    for _ in range(20):
        first, second = client.admit("theirstory", 1), client.admit("theirstory", 1)
        assert first["admitted"] and second["admitted"]
        assert client.release(first["lease_id"], wait=False) == {"released": None, "source": "sidecar"}
        assert client.release(second["lease_id"], wait=False)["source"] == "sidecar"
    assert client.health()["leases_in_flight"] == 0
    assert client.failures == 0


def test_a_refused_release_sent_without_waiting_is_logged_and_the_next_answer_is_its_own(sidecar_process, caplog):
    client = SidecarClient(str(sidecar_process.sock))
    lease_id = client.admit("p", 1)["lease_id"]
    client.release(lease_id, "finished-ish", wait=False)  # not an outcome: the sidecar answers 400
    with caplog.at_level(logging.WARNING, logger="upload_gate.client"):
        assert client.release(lease_id, "completed") == {"released": True, "source": "sidecar"}
    assert "refused a request sent without waiting: 400" in caplog.text
    assert client.failures == 0


def test_a_release_sent_just_before_the_sidecar_closed_the_connection_is_sent_again(make_gate, sock_dir):
    gate = make_gate([star_row(max_concurrent_uploads=1)])
    server = SidecarServer(GateService(gate), socket_path=str(sock_dir / "closing.sock"), idle_timeout_seconds=0.1)
    server.start()
    try:
        client = SidecarClient(server.address)
        lease_id = client.admit("p", 1)["lease_id"]
        connection = client._local.connection
        connection.sock.close()  # the connection is gone before the release reaches the sidecar...
        connection.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.sock.connect(server.address)
        connection.sock.shutdown(socket.SHUT_RD)
        release = json.dumps({"lease_id": lease_id, "outcome": "completed"}).encode()
        connection.unanswered.append(client._post_request(b"/v1/release", release))
        # ...so the next request finds it unanswered and sends it again on a new connection.
        assert client.admit("p", 1)["admitted"] is True
        assert client.failures == 0
    finally:
        server.close()


def test_a_bad_request_raises_with_the_field_named(sidecar_process):
    client = SidecarClient(str(sidecar_process.sock))
    with pytest.raises(SidecarRequestError) as raised:
        client.admit("p", -5)
    assert raised.value.field == "size_bytes" and raised.value.status == 400
    assert client.failures == 0 and client.admit("p", 5)["source"] == "sidecar"


def test_any_client_id_reaches_the_sidecar_as_written(make_gate, sock_dir):
    """Quotes, backslashes and letters outside ASCII in a client id: the sidecar decides for
    that very id (its own row), and a release of its lease frees the slot."""
    client_id = 'école "nord" \\ 東'
    rows = [star_row(max_concurrent_uploads=50), {**star_row(max_concurrent_uploads=1), "client_id": client_id}]
    server = SidecarServer(GateService(make_gate(rows)), socket_path=str(sock_dir / "ids.sock"))
    server.start()
    try:
        client = SidecarClient(server.address)
        first = client.admit(client_id, 5)
        assert first["admitted"] is True and '"inflight";q=1;' in first["headers"]["RateLimit-Policy"]
        assert client.admit(client_id, 5)["status"] == 429  # its own limit of one, not the star row's 50
        client.release(first["lease_id"], "completed", wait=False)
        assert client.admit(client_id, 5)["admitted"] is True
    finally:
        server.close()


@pytest.mark.parametrize(
    ("client_id", "size_bytes", "field"),
    [(7, 1, "client_id"), (None, 1, "client_id"), ("p", True, "size_bytes"), ("p", 2.5, "size_bytes")],
)
def test_a_client_id_or_size_of_the_wrong_type_is_refused_by_the_sidecar_naming_it(
    sidecar_process, client_id, size_bytes, field
):
    client = SidecarClient(str(sidecar_process.sock))
    with pytest.raises(SidecarRequestError) as raised:
        client.admit(client_id, size_bytes)
    assert raised.value.field == field


def test_release_and_renew_of_no_lease_do_nothing(sock_dir):
    client = SidecarClient(str(sock_dir / "nothing-here.sock"))
    assert client.release(None)["released"] is False
    assert client.renew(None)["renewed"] is False
    assert client.failures == 0  # nothing was even tried


def test_it_fails_open_by_default_when_the_socket_is_missing_and_logs_it(sock_dir, caplog):
    client = SidecarClient(str(sock_dir / "missing.sock"))
    with caplog.at_level(logging.WARNING, logger="upload_gate.client"):
        decision = client.admit("p", 1)
        client.admit("p", 1)
    assert decision["source"] == "fail-open" and decision["admitted"] is True and decision["status"] == 200
    assert decision["lease_id"] is None and decision["headers"] == {}
    assert client.failures == 2
    assert len([r for r in caplog.records if "failing open" in r.getMessage()]) == 1  # not once per request


def test_it_fails_closed_when_configured(sock_dir):
    client = SidecarClient(str(sock_dir / "missing.sock"), fail_open=False, fail_closed_retry_after_seconds=7)
    decision = client.admit("p", 1)
    assert decision["source"] == "fail-closed"
    assert (decision["admitted"], decision["status"], decision["retry_after_seconds"]) == (False, 503, 7)
    assert decision["headers"] == {"Retry-After": "7"} and decision["problem"]["status"] == 503
    assert client.release("0badf00d-1")["source"] == "fail-closed"


def test_a_killed_sidecar_fails_open_and_a_restarted_one_is_used_again(sidecar_process):
    client = SidecarClient(str(sidecar_process.sock))
    held = client.admit("p", 1)["lease_id"]
    sidecar_process.stop(signal.SIGKILL)
    assert client.admit("p", 1)["source"] == "fail-open"
    sidecar_process.start()  # replaces the socket file the dead process left
    again = client.admit("p", 1)
    assert again["source"] == "sidecar" and again["admitted"]
    # The restarted sidecar forgot every lease: releasing an old one is a plain "no".
    assert client.release(held) == {"released": False, "source": "sidecar"}


def test_an_orderly_stop_removes_the_socket_and_exits_0(sidecar_process):
    code, output = sidecar_process.stop()
    assert code == 0, output
    assert not sidecar_process.sock.exists()


def test_a_second_sidecar_on_the_same_socket_refuses_to_start(sidecar_process):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    second = subprocess.run(
        [sys.executable, "-m", "upload_gate", "serve", "--socket", str(sidecar_process.sock)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1 and "already listening" in second.stderr
    assert SidecarClient(str(sidecar_process.sock)).admit("p", 1)["source"] == "sidecar"


def test_a_connection_the_sidecar_closed_while_idle_is_replaced_transparently(make_gate, sock_dir):
    server = SidecarServer(
        GateService(make_gate([star_row()])), socket_path=str(sock_dir / "idle.sock"), idle_timeout_seconds=0.1
    )
    server.start()
    try:
        client = SidecarClient(server.address)
        assert client.admit("p", 1)["source"] == "sidecar"
        time.sleep(0.4)  # the sidecar closes the idle connection
        assert client.admit("p", 1)["source"] == "sidecar"
        assert client.failures == 0
    finally:
        server.close()


def _fake_server(sock_path: Path, answer: bytes | None) -> threading.Thread:
    """Answers every request with `answer` (None: accepts and never answers)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock_path))
    listener.listen(8)

    def run() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        if answer is not None:
            conn.sendall(answer)
        time.sleep(1.0)
        conn.close()
        listener.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot json!",
        b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
        None,  # never answers: the client's timeout
    ],
)
def test_a_sidecar_that_answers_5xx_garbage_or_nothing_counts_as_unreachable(sock_dir, answer):
    sock_path = sock_dir / "fake.sock"
    _fake_server(sock_path, answer)
    client = SidecarClient(str(sock_path), timeout_seconds=0.2)
    started = time.monotonic()
    decision = client.admit("p", 1)
    assert decision["source"] == "fail-open" and client.failures == 1
    assert time.monotonic() - started < 5


def test_the_sidecar_reports_the_hosts_figures_to_the_dashboard(table, sock_dir):
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    reports: list[dict] = []

    class Dashboard(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            assert self.headers["Authorization"] == "Bearer host-token"
            reports.append(json.loads(body))
            self.send_response(202)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"status": "accepted"}')

        def log_message(self, *args):
            pass

    dashboard = ThreadingHTTPServer(("127.0.0.1", 0), Dashboard)
    threading.Thread(target=dashboard.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{dashboard.server_address[1]}"
    process = SidecarProcess(
        table,
        sock_dir / "gate.sock",
        *("--dashboard-url", url, "--server-id", "host-1", "--report-interval-seconds", "1", "--token", "host-token"),
    )
    process.start()
    try:
        # Two worker processes' worth of connections; the host reports once, as one server.
        workers = [SidecarClient(str(process.sock)), SidecarClient(str(process.sock))]
        leases = [worker.admit("theirstory", 10)["lease_id"] for worker in workers]
        workers[0].release(leases[0], "completed")
        code, output = process.stop()
        assert code == 0, output
    finally:
        dashboard.shutdown()
    assert reports and {report["server_id"] for report in reports} == {"host-1"}
    admitted = sum(report["clients"].get("*", {}).get("admitted", 0) for report in reports)
    completed = sum(report["clients"].get("*", {}).get("completed", 0) for report in reports)
    assert (admitted, completed) == (2, 1)  # the last figures went out on the orderly stop
    assert reports[-1]["clients"]["*"]["uploads_in_progress"] == 1


def test_an_enrolling_sidecar_enrols_the_host_once_and_deregisters_it_on_an_orderly_stop(table, sock_dir, tmp_path):
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    calls: list[tuple[str, str]] = []

    class Dashboard(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            calls.append((self.path, self.headers["Authorization"]))
            answer = {"server_id": "host-7", "token": "enrolled-token", "created": True}
            status = 201 if self.path == "/api/v1/enrol" else 200 if self.path == "/api/v1/deregister" else 202
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(answer if status == 201 else {"status": "accepted"}).encode())

        def log_message(self, *args):
            pass

    dashboard = ThreadingHTTPServer(("127.0.0.1", 0), Dashboard)
    threading.Thread(target=dashboard.serve_forever, daemon=True).start()
    secret = tmp_path / "secret"
    secret.write_text("fleet-secret\n")
    process = SidecarProcess(
        table,
        sock_dir / "gate.sock",
        *("--dashboard-url", f"http://127.0.0.1:{dashboard.server_address[1]}", "--report-interval-seconds", "1"),
        *("--enrolment-secret-file", str(secret), "--enrolled-token-file", str(tmp_path / "token.json")),
    )
    process.start()
    try:
        SidecarClient(str(process.sock)).admit("theirstory", 10)
        deadline = time.monotonic() + 20
        while not any(path == "/api/v1/reports" for path, _ in calls) and time.monotonic() < deadline:
            time.sleep(0.1)
        code, output = process.stop()
        assert code == 0, output
    finally:
        dashboard.shutdown()
    paths = [path for path, _ in calls]
    assert paths[0] == "/api/v1/enrol" and calls[0][1] == "Bearer fleet-secret"
    assert paths.count("/api/v1/enrol") == 1 and paths[-1] == "/api/v1/deregister"
    assert all(auth == "Bearer enrolled-token" for path, auth in calls if path != "/api/v1/enrol")
