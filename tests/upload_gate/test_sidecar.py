"""The gate sidecar over its Unix socket: the protocol, one gate shared by every connection,
leases of dead workers, metrics, and a server that answers garbage with 400 and stays up."""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import threading
from pathlib import Path

import pytest

from tests.factories import star_row
from upload_gate import StaticSource
from upload_gate.reporter import StatusReporter
from upload_gate.server import GateService, SidecarServer
from upload_gate.service import admitted_json


@pytest.fixture
def socket_dir():
    # Not tmp_path: a Unix socket path must stay under ~108 bytes.
    path = Path(tempfile.mkdtemp(prefix="ugs-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def sidecar(make_gate, socket_dir):
    """sidecar(rows, **gate kwargs) -> a running SidecarServer on a socket of its own."""
    servers = []

    def start(rows=None, *, idle_timeout_seconds=30.0, **gate_kwargs):
        gate = make_gate(rows if rows is not None else [star_row()], **gate_kwargs)
        server = SidecarServer(
            GateService(gate),
            socket_path=str(socket_dir / f"gate{len(servers)}.sock"),
            idle_timeout_seconds=idle_timeout_seconds,
        )
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


class Raw:
    """A hand-driven HTTP/1.1 connection, to send exactly the bytes a test wants."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(path)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def post(self, path: str, body, extra: str = "") -> tuple[int, dict, dict]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        head = f"POST {path} HTTP/1.1\r\nHost: gate\r\nContent-Length: {len(data)}\r\n{extra}\r\n"
        self.send(head.encode() + data)
        return self.answer()

    def get(self, path: str) -> tuple[int, dict, bytes]:
        self.send(f"GET {path} HTTP/1.1\r\nHost: gate\r\n\r\n".encode())
        status, headers, body = self.answer(raw=True)
        return status, headers, body

    def answer(self, raw: bool = False):
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; got {self.buffer!r}")
            self.buffer += chunk
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines[1:])}
        length = int(headers["content-length"])
        while len(self.buffer) < length:
            self.buffer += self.sock.recv(65536)
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, (body if raw else json.loads(body))

    def closed_by_peer(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, TimeoutError):
            return True

    def close(self) -> None:
        self.sock.close()


def admit(conn: Raw, client_id: str = "partner", size_bytes: int = 100) -> dict:
    status, _headers, body = conn.post("/v1/admit", {"client_id": client_id, "size_bytes": size_bytes})
    assert status == 200, body
    return body


# -- the protocol ------------------------------------------------------------------------
def test_an_admitted_upload_gets_a_lease_and_the_headers_to_copy(sidecar):
    server = sidecar([star_row(requests_per_minute=60, burst=5, max_concurrent_uploads=4)])
    conn = Raw(server.address)
    body = admit(conn)
    assert body["admitted"] is True and body["status"] == 200 and body["limit"] is None
    assert isinstance(body["lease_id"], str) and body["lease_expires_in_seconds"] == 900
    assert body["headers"]["RateLimit-Policy"] == '"rpm";q=60;w=60, "inflight";q=4;qu="concurrent-requests"'
    assert body["headers"]["RateLimit"].startswith('"rpm";r=4;')
    assert "Retry-After" not in body["headers"] and body["problem"] is None


def test_a_rejection_is_still_a_200_answer_with_the_decisions_own_status(sidecar):
    server = sidecar([star_row(requests_per_minute=60, burst=1)])
    conn = Raw(server.address)
    admit(conn)
    body = admit(conn)
    assert body["admitted"] is False and body["status"] == 429 and body["limit"] == "requests_per_minute"
    assert body["lease_id"] is None and body["lease_expires_in_seconds"] is None
    assert body["headers"]["Retry-After"] == str(body["retry_after_seconds"])


def test_a_pause_answers_503_with_its_reason(sidecar):
    server = sidecar([star_row(), {"client_id": "partner", "version": 1, "paused": True, "pause_reason": "migration"}])
    body = admit(Raw(server.address))
    assert (body["admitted"], body["status"], body["reason"], body["limit"]) == (False, 503, "migration", "paused")


def test_release_ends_a_lease_once(sidecar):
    server = sidecar([star_row(max_concurrent_uploads=1)])
    conn = Raw(server.address)
    lease_id = admit(conn)["lease_id"]
    assert admit(conn)["admitted"] is False
    assert conn.post("/v1/release", {"lease_id": lease_id, "outcome": "completed"})[2] == {"released": True}
    assert conn.post("/v1/release", {"lease_id": lease_id, "outcome": "completed"})[2] == {"released": False}
    assert admit(conn)["admitted"] is True


def test_a_lease_id_from_an_earlier_sidecar_process_is_gone_not_malformed(sidecar):
    conn = Raw(sidecar().address)
    status, _, body = conn.post("/v1/release", {"lease_id": "0badf00d-17", "outcome": "failed"})
    assert (status, body) == (200, {"released": False})


def test_every_worker_connection_shares_the_hosts_one_gate(sidecar):
    # The point of the sidecar: N worker processes on a host admit one share, not N.
    server = sidecar([star_row(max_concurrent_uploads=3)])
    workers = [Raw(server.address) for _ in range(6)]
    decisions = [admit(worker) for worker in workers]
    assert sum(d["admitted"] for d in decisions) == 3
    assert {d["limit"] for d in decisions if not d["admitted"]} == {"max_concurrent_uploads"}


def test_concurrent_workers_never_exceed_the_cap(sidecar):
    server = sidecar([star_row(max_concurrent_uploads=5)])
    admitted = []
    lock = threading.Lock()

    def worker():
        conn = Raw(server.address)
        for _ in range(50):
            body = admit(conn)
            if body["admitted"]:
                with lock:
                    admitted.append(body["lease_id"])
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 5 and len(set(admitted)) == 5


def test_renew_keeps_a_long_upload_past_the_lease_timeout(sidecar, clock):
    server = sidecar([star_row(max_concurrent_uploads=1)], lease_timeout_seconds=10)
    conn = Raw(server.address)
    lease_id = admit(conn)["lease_id"]
    clock.advance(8)
    assert conn.post("/v1/renew", {"lease_id": lease_id})[2] == {"renewed": True, "expires_in_seconds": 10}
    clock.advance(8)
    server.service.sweep()
    assert admit(conn)["admitted"] is False  # still held
    assert conn.post("/v1/release", {"lease_id": lease_id, "outcome": "completed"})[2]["released"] is True


def test_a_dead_workers_leases_end_by_expiry_and_count_as_timed_out(sidecar, clock):
    server = sidecar([star_row(max_concurrent_uploads=2)], lease_timeout_seconds=10)
    dying = Raw(server.address)
    held = [admit(dying)["lease_id"] for _ in range(2)]
    dying.close()  # the worker died without releasing
    other = Raw(server.address)
    assert admit(other)["admitted"] is False
    clock.advance(10)
    assert server.service.sweep() == 2
    assert len(server.service.leases) == 0
    assert other.post("/v1/renew", {"lease_id": held[0]})[2] == {"renewed": False, "expires_in_seconds": None}
    assert other.post("/v1/release", {"lease_id": held[1], "outcome": "completed"})[2] == {"released": False}
    assert admit(other)["admitted"] is True
    metrics = other.get("/metrics")[2].decode()
    assert 'upload_gate_lease_ends_total{client_id="*",outcome="timed_out"} 2.0' in metrics


def test_releasing_after_the_deadline_counts_as_timed_out_whatever_the_worker_says(sidecar, clock):
    server = sidecar(lease_timeout_seconds=10)
    conn = Raw(server.address)
    lease_id = admit(conn)["lease_id"]
    clock.advance(11)
    assert conn.post("/v1/release", {"lease_id": lease_id, "outcome": "completed"})[2] == {"released": False}
    metrics = conn.get("/metrics")[2].decode()
    assert 'outcome="timed_out"} 1.0' in metrics and 'outcome="completed"' not in metrics


# -- health and metrics ----------------------------------------------------------------------
def test_healthz_says_ok_then_stale_when_the_table_cannot_be_read(sidecar, make_gate, clock):
    source = StaticSource([star_row()])
    server = sidecar(source=source)
    conn = Raw(server.address)
    status, _, body = conn.get("/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok" and json.loads(body)["config_version"] == 1
    source.available = False
    server.service.gate.refresh_now()
    clock.advance(3)
    status, _, body = conn.get("/healthz")
    health = json.loads(body)
    assert status == 503 and health["status"] == "stale" and health["stale_seconds"] is not None


def test_healthz_is_503_not_loaded_before_the_table_was_ever_read(sidecar):
    source = StaticSource([star_row()])
    source.available = False
    status, _, body = Raw(sidecar(source=source).address).get("/healthz")
    assert status == 503 and json.loads(body)["status"] == "not_loaded"


def test_metrics_are_running_totals_that_status_reports_do_not_reset(sidecar):
    server = sidecar([star_row(max_concurrent_uploads=1), {"client_id": "theirstory", "version": 1}])
    conn = Raw(server.address)
    lease_id = admit(conn, "theirstory")["lease_id"]
    admit(conn, "direct-user-1")
    admit(conn, "direct-user-1")  # over the `*` defaults' cap: throttled
    conn.post("/v1/release", {"lease_id": lease_id, "outcome": "failed"})
    reporter = StatusReporter(server.service.gate, "http://127.0.0.1:9", "host-1", "t", start=False)
    reporter.collect()  # takes and resets the gate's per-report counters
    status, headers, text = conn.get("/metrics")
    metrics = text.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert 'upload_gate_decisions_total{client_id="theirstory",outcome="admitted"} 1.0' in metrics
    assert 'upload_gate_decisions_total{client_id="*",outcome="admitted"} 1.0' in metrics
    assert 'upload_gate_decisions_total{client_id="*",outcome="throttled"} 1.0' in metrics
    assert 'upload_gate_rejections_total{client_id="*",limit="max_concurrent_uploads"} 1.0' in metrics
    assert 'upload_gate_lease_ends_total{client_id="theirstory",outcome="failed"} 1.0' in metrics
    assert "upload_gate_leases_in_flight 1.0" in metrics
    assert "upload_gate_config_version 1.0" in metrics and "upload_gate_stale_seconds 0.0" in metrics
    assert "direct-user" not in metrics  # clients without a row are `*`: the label set stays bounded


# -- bad requests never stop it --------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", None),
        (b"[1, 2]", None),
        (b"\xff\xfe{", None),
        (b"[" * 3000 + b"]" * 3000, None),
        (b'{"client_id": "p", "size_bytes": 1} and more', None),
        (b'{"client_id": "p", "size_bytes": 1}{}', None),
        ({"size_bytes": 1}, "client_id"),
        ({"client_id": 7, "size_bytes": 1}, "client_id"),
        ({"client_id": "", "size_bytes": 1}, "client_id"),
        ({"client_id": "x" * 256, "size_bytes": 1}, "client_id"),
        ({"client_id": "p"}, "size_bytes"),
        ({"client_id": "p", "size_bytes": 1.5}, "size_bytes"),
        ({"client_id": "p", "size_bytes": "10"}, "size_bytes"),
        ({"client_id": "p", "size_bytes": True}, "size_bytes"),
        ({"client_id": "p", "size_bytes": -1}, "size_bytes"),
        ({"client_id": "p", "size_bytes": 2**63}, "size_bytes"),
    ],
)
def test_a_bad_admit_body_is_a_400_naming_the_field_and_the_connection_goes_on(sidecar, body, field):
    server = sidecar()
    conn = Raw(server.address)
    status, _, answer = conn.post("/v1/admit", body)
    assert status == 400 and answer["field"] == field and answer["error"]
    assert admit(conn)["admitted"] is True  # same connection, still served


def test_whitespace_around_a_json_body_is_allowed_as_json_allows_it(sidecar):
    conn = Raw(sidecar().address)
    status, _, answer = conn.post("/v1/admit", b' \r\n\t{"client_id": "p", "size_bytes": 1}\n ')
    assert status == 200 and answer["admitted"] is True


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/release", {"outcome": "completed"}, "lease_id"),
        ("/v1/release", {"lease_id": 5, "outcome": "completed"}, "lease_id"),
        ("/v1/release", {"lease_id": "../../etc", "outcome": "completed"}, "lease_id"),
        ("/v1/release", {"lease_id": "0badf00d-1", "outcome": "done"}, "outcome"),
        ("/v1/release", {"lease_id": "0badf00d-1"}, "outcome"),
        ("/v1/renew", {"lease_id": None}, "lease_id"),
        ("/v1/renew", {"lease_id": "0badf00d-" + "9" * 40}, "lease_id"),
    ],
)
def test_bad_release_and_renew_bodies_are_400(sidecar, path, body, field):
    status, _, answer = Raw(sidecar().address).post(path, body)
    assert status == 400 and answer["field"] == field


def test_unknown_paths_are_404_and_wrong_methods_405_both_json(sidecar):
    conn = Raw(sidecar().address)
    status, _, body = conn.post("/v2/admit", {})
    assert status == 404 and "error" in body
    status, headers, body = conn.get("/v1/admit")
    assert status == 405 and "error" in json.loads(body) and "allow" in headers
    status, _, body = conn.post("/healthz", {})
    assert status == 405


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"\x00\x01\x02\x03 \xff\xfe HTTP/1.1\r\n\r\n",
        b"POST /v1/admit HTTP/1.1\r\nContent-Length: nine\r\n\r\n",
        b"POST /v1/admit HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n{",
        b"POST /v1/admit HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        b"POST /v1/admit HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST /v1/admit HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n",
        b"POST /v1/admit HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /v1/admit HTTP/1.1\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n",
        b"POST /v1/admit HTTP/1.1\r\n no-colon-line\r\n\r\n",
    ],
)
def test_broken_http_is_answered_400_then_closed_and_the_sidecar_stays_up(sidecar, request_bytes):
    server = sidecar()
    conn = Raw(server.address)
    conn.send(request_bytes)
    status, headers, body = conn.answer()
    assert status == 400 and body["error"] and headers["connection"] == "close"
    assert conn.closed_by_peer()
    assert admit(Raw(server.address))["admitted"] is True


def test_a_huge_body_is_refused_without_reading_it_all(sidecar):
    server = sidecar()
    conn = Raw(server.address)
    conn.send(b"POST /v1/admit HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n" + b"x" * 100_000)
    status, _, body = conn.answer()
    assert status == 400 and "larger" in body["error"]


def test_a_half_closed_request_gets_a_400_and_the_sidecar_stays_up(sidecar):
    server = sidecar()
    conn = Raw(server.address)
    conn.send(b'POST /v1/admit HTTP/1.1\r\nContent-Length: 50\r\n\r\n{"client_id": ')
    conn.sock.shutdown(socket.SHUT_WR)  # the worker gave up mid-body
    status, _, body = conn.answer()
    assert status == 400 and "closed" in body["error"]
    # Closed mid-head, and closed at once after connecting: nothing to answer, nothing breaks.
    for partial in (b"POST /v1/adm", b""):
        gone = Raw(server.address)
        gone.send(partial)
        gone.close()
    assert admit(Raw(server.address))["admitted"] is True


def test_keep_alive_serves_many_requests_on_one_connection_and_pipelined_ones_in_order(sidecar):
    server = sidecar()
    conn = Raw(server.address)
    leases = [admit(conn)["lease_id"] for _ in range(200)]
    assert len(set(leases)) == 200
    one = json.dumps({"client_id": "p", "size_bytes": 1}).encode()
    request = b"POST /v1/admit HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(one), one)
    conn.send(request * 3 + b"GET /healthz HTTP/1.1\r\n\r\n")
    assert [conn.answer()[0] for _ in range(3)] == [200, 200, 200]
    assert json.loads(conn.answer(raw=True)[2])["status"] == "ok"


def test_a_client_that_reads_no_answers_is_held_back_and_others_are_still_served(sidecar):
    """One thread serves every connection: a worker pipelining thousands of requests without
    reading an answer must neither grow the sidecar's memory without bound nor hold up the
    others; once it reads, it gets every answer, in order."""
    server = sidecar([star_row(max_concurrent_uploads=100_000)])
    greedy = Raw(server.address)
    one = json.dumps({"client_id": "p", "size_bytes": 1}).encode()
    request = b"POST /v1/admit HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(one), one)
    count = 6000  # answers of ~700 bytes: several MiB, past what the sidecar holds unsent
    sender = threading.Thread(target=greedy.send, args=(request * count,), daemon=True)
    sender.start()
    other = Raw(server.address)
    for _ in range(20):
        assert admit(other)["admitted"] is True
    leases = [greedy.answer()[2]["lease_id"] for _ in range(count)]
    sender.join(5)
    assert len(set(leases)) == count
    assert [int(lease.split("-")[1]) for lease in leases] == sorted(int(lease.split("-")[1]) for lease in leases)


def test_a_request_then_a_half_close_gets_its_answer_then_the_close(sidecar):
    conn = Raw(sidecar().address)
    one = json.dumps({"client_id": "p", "size_bytes": 1}).encode()
    conn.send(b"POST /v1/admit HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(one), one))
    conn.sock.shutdown(socket.SHUT_WR)
    assert conn.answer()[2]["admitted"] is True
    assert conn.closed_by_peer()


def test_a_chunked_body_and_expect_100_continue_are_understood(sidecar):
    conn = Raw(sidecar().address)
    conn.send(
        b"POST /v1/admit HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
        b'10\r\n{"client_id": "p\r\n13\r\n", "size_bytes": 5}\r\n0\r\n\r\n'
    )
    continue_line = conn.sock.recv(25)
    assert continue_line == b"HTTP/1.1 100 Continue\r\n\r\n"
    status, _, body = conn.answer()
    assert status == 200 and body["admitted"] is True


def test_a_head_seen_before_is_framed_as_the_first_time(sidecar):
    """The sidecar remembers the framing of heads it has read; every answer must be the one
    a first reading would give: 100 Continue each time, a broken head refused each time,
    and heads past the number it remembers still read right."""
    server = sidecar()
    conn = Raw(server.address)
    body = json.dumps({"client_id": "p", "size_bytes": 1}).encode()
    expecting = b"POST /v1/admit HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
    for _ in range(3):
        conn.send(expecting)
        assert conn.sock.recv(25) == b"HTTP/1.1 100 Continue\r\n\r\n"
        conn.send(body)
        assert conn.answer()[2]["admitted"] is True
    for _ in range(3):
        broken = Raw(server.address)
        broken.send(b"POST /v1/admit HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}")
        assert broken.answer()[0] == 400 and broken.closed_by_peer()
    for number in range(700):  # more distinct heads than it remembers
        status, _, answer = conn.post("/v1/admit", body, extra=f"X-Request-Number: {number}\r\n")
        assert status == 200 and answer["admitted"] is True


def test_http_1_0_and_connection_close_end_the_connection_after_the_answer(sidecar):
    server = sidecar()
    for head in (b"GET /healthz HTTP/1.0\r\n\r\n", b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n"):
        conn = Raw(server.address)
        conn.send(head)
        assert conn.answer(raw=True)[0] == 200
        assert conn.closed_by_peer()


def test_an_idle_connection_is_closed_after_the_idle_timeout(sidecar):
    server = sidecar(idle_timeout_seconds=0.2)
    conn = Raw(server.address)
    admit(conn)
    assert conn.closed_by_peer()  # recv waits up to 5 s; the sidecar closes after 0.2 s


def test_a_request_cut_off_mid_head_is_answered_400_when_the_idle_timeout_ends_it(sidecar):
    conn = Raw(sidecar(idle_timeout_seconds=0.2).address)
    conn.send(b"POST /v1/admit HTTP/1.1\r\nContent-Len")
    status, headers, body = conn.answer()
    assert status == 400 and "timed out" in body["error"] and headers["connection"] == "close"
    assert conn.closed_by_peer()


def test_random_garbage_never_stops_the_sidecar(sidecar):
    import random

    server = sidecar()
    generator = random.Random(17)
    for _ in range(60):
        conn = Raw(server.address)
        conn.send(bytes(generator.randrange(256) for _ in range(generator.randrange(1, 300))) + b"\r\n\r\n")
        try:
            status, _, _ = conn.answer(raw=True)
            assert status in (400, 404, 405)
        except (ConnectionError, KeyError):
            pass
        conn.close()
    assert admit(Raw(server.address))["admitted"] is True
    metrics = Raw(server.address).get("/metrics")[2].decode()
    assert "upload_gate_bad_requests_total" in metrics


def test_a_second_sidecar_will_not_steal_a_live_socket_but_replaces_a_dead_ones(sidecar, socket_dir):
    from upload_gate.server import _unix_listener

    server = sidecar()
    with pytest.raises(FileExistsError):
        _unix_listener(server.address, 0o660)
    stale = socket_dir / "stale.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(stale))
    dead.close()  # the file stays, nobody listens
    listener = _unix_listener(str(stale), 0o600)
    assert oct(stale.stat().st_mode & 0o777) == "0o600"
    listener.close()


def test_a_bug_behind_a_request_is_a_500_and_the_sidecar_stays_up(sidecar, monkeypatch):
    server = sidecar()
    gate = server.service.gate

    def broken_admit(client_id, size_bytes):
        raise RuntimeError("a bug")

    monkeypatch.setattr(gate, "admit", broken_admit)
    conn = Raw(server.address)
    status, _, body = conn.post("/v1/admit", {"client_id": "p", "size_bytes": 1})
    assert status == 500 and body["error"]  # the client then fails open or closed, as configured
    monkeypatch.undo()
    assert admit(Raw(server.address))["admitted"] is True


def test_the_admitted_answer_written_directly_is_the_json_of_the_documented_fields():
    headers = {
        "RateLimit-Policy": '"rpm";q=600;w=60, "inflight";q=2;qu="concurrent-requests"',
        "RateLimit": '"rpm";r=9;t=1',
    }
    answer = json.loads(admitted_json("0a1b2c3d-17", 900, headers))
    assert answer == {
        "admitted": True,
        "status": 200,
        "reason": "",
        "limit": None,
        "retry_after_seconds": None,
        "lease_id": "0a1b2c3d-17",
        "lease_expires_in_seconds": 900,
        "headers": headers,
        "problem": None,
    }


def test_each_answer_carries_its_own_policy_when_policies_change_and_repeat():
    # A policy's JSON text is remembered: answers after a table change must not reuse it.
    first = {"RateLimit-Policy": '"rpm";q=600;w=60', "RateLimit": '"rpm";r=9;t=1'}
    second = {"RateLimit-Policy": '"rpm";q=60;w=60', "RateLimit": '"rpm";r=0;t=2'}
    for headers in (first, second, first, second):
        assert json.loads(admitted_json("0a1b2c3d-17", 900, headers))["headers"] == headers
    assert json.loads(admitted_json("0a1b2c3d-17", 900, {}))["headers"] == {}
