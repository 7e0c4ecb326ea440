"""The status reporter against a fake dashboard: a tiny http.server on 127.0.0.1.

No Django database: the gate reads an in-memory table on a manual clock. Nothing here
asserts on elapsed time; waits are bounded guards around conditions.
"""

import http.server
import json
import re
import socket
import sys
import threading
from pathlib import Path

import pytest
from test_gate_table import wait_until

from tests.factories import star_row
from upload_gate import StaticSource
from upload_gate.host import process_boot_id
from upload_gate.reporter import StatusReporter

OPENAPI_PATH = Path(__file__).resolve().parents[2] / "docs" / "status-report.openapi.json"
OPENAPI = json.loads(OPENAPI_PATH.read_text())
TOKEN = "uos_test-token"


# -- the report schema, checked with the subset of JSON Schema the OpenAPI file uses --------
def schema_errors(value, schema: dict, path: str = "$") -> list[str]:
    """jsonschema is not installed here: this covers every keyword the Report schema uses."""
    if "$ref" in schema:
        target = OPENAPI
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return schema_errors(value, target, path)
    kind = schema.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "array": lambda v: isinstance(v, list),
    }
    if kind and not checks[kind](value):
        return [f"{path}: not {kind}"]
    errors = []
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: below {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{path}: above {schema['maximum']}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: does not match {schema['pattern']}")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(f"{path}: longer than {schema['maxLength']}")
    if kind == "array":
        if len(value) > schema.get("maxItems", len(value)):
            errors.append(f"{path}: too many items")
        for index, item in enumerate(value):
            errors += schema_errors(item, schema.get("items", {}), f"{path}[{index}]")
    if kind == "object":
        properties = schema.get("properties", {})
        errors += [f"{path}.{name}: required" for name in schema.get("required", []) if name not in value]
        if len(value) > schema.get("maxProperties", len(value)):
            errors.append(f"{path}: too many properties")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                errors += schema_errors(item, properties[name], f"{path}.{name}")
            elif extra is False:
                errors.append(f"{path}.{name}: not allowed")
            elif isinstance(extra, dict):
                errors += schema_errors(item, extra, f"{path}.{name}")
    return errors


REPORT_SCHEMA = {"$ref": "#/components/schemas/Report"}


def test_the_schema_check_itself_catches_mistakes():
    good = {"server_id": "upload-1", "sequence": 0, "cpu_percent": 1.5, "config_version": 2, "clients": {}}
    assert schema_errors(good, REPORT_SCHEMA) == []
    bad = {**good, "cpu_percent": 101, "extra": 1, "clients": {"c": {"paused": 1, "admitted": -1}}}
    del bad["sequence"]
    assert len(schema_errors(bad, REPORT_SCHEMA)) == 5
    bad_rows = [{"client_id": "p", "column": "c" * 65, "problem": "x", "extra": 1}, {"client_id": "p"}]
    assert len(schema_errors({**good, "bad_rows": bad_rows}, REPORT_SCHEMA)) == 4


# -- a fake dashboard ---------------------------------------------------------------------
class FakeDashboard:
    """Records every POST; `respond(report) -> (status, body dict)` decides the answer."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.respond = lambda report: (202, {"status": "accepted", "sequence": report["sequence"]})
        dashboard = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                report = json.loads(body)
                dashboard.requests.append(report)
                dashboard.headers.append({"path": self.path, **dict(self.headers)})
                status, answer = dashboard.respond(report)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that timed out
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def sequences(self) -> list[int]:
        return [report["sequence"] for report in self.requests]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def dashboard():
    server = FakeDashboard()
    yield server
    server.stop()


def closed_port() -> int:
    """A port nothing listens on: connecting is refused, as with a dashboard that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def make_reporter():
    reporters: list[StatusReporter] = []

    def make(gate, url, **kwargs) -> StatusReporter:
        kwargs.setdefault("start", False)
        kwargs.setdefault("cpu_percent", lambda: 37.5)
        kwargs.setdefault("timeout_seconds", 10)
        reporter = StatusReporter(gate, url, kwargs.pop("server_id", "upload-1"), TOKEN, **kwargs)
        reporters.append(reporter)
        return reporter

    yield make
    for reporter in reporters:
        reporter.stop(final_report=False)


def table_rows() -> list[dict]:
    return [
        star_row(version=7),
        {"client_id": "theirstory-sdk", "version": 6, "max_concurrent_uploads": 2},
        {"client_id": "paused-client", "version": 5, "paused": True, "pause_reason": "maintenance"},
    ]


# -- the report -----------------------------------------------------------------------------
def test_the_report_matches_the_schema_and_carries_the_gates_figures(make_gate, make_reporter, dashboard):
    gate = make_gate(table_rows())
    leases = [gate.admit("theirstory-sdk", 1000).lease for _ in range(2)]
    assert not gate.admit("theirstory-sdk", 1000).admitted  # 429
    assert not gate.admit("paused-client", 10).admitted  # 503
    gate.release(leases[0], "completed")
    direct = [
        gate.admit(client, size).lease for client, size in (("alice", 50), ("bob@example.org", 70), ("not valid!", 5))
    ]
    gate.release(direct[0], "failed")
    reporter = make_reporter(gate, dashboard.url, interval_seconds=5, boot_id="boot-1")

    assert reporter.send_now() == 1

    [report] = dashboard.requests
    assert schema_errors(report, REPORT_SCHEMA) == []
    assert dashboard.headers[0]["path"] == "/api/v1/reports"
    assert dashboard.headers[0]["Authorization"] == f"Bearer {TOKEN}"
    assert dashboard.headers[0]["Content-Type"] == "application/json"
    top = ("server_id", "boot_id", "interval_seconds", "cpu_percent", "config_version")
    assert {k: report[k] for k in top} == {
        "server_id": "upload-1",
        "boot_id": "boot-1",
        "interval_seconds": 5,
        "cpu_percent": 37.5,
        "config_version": 7,
    }
    assert report["clients"] == {
        "theirstory-sdk": {
            "uploads_in_progress": 1,
            "bytes_in_flight": 1000,
            "admitted": 2,
            "throttled": 1,
            "timed_out": 0,
            "completed": 1,
            "failed": 0,
        },
        # a 503 (pause) has no field of its own: it is reported as throttled
        "paused-client": {
            "uploads_in_progress": 0,
            "bytes_in_flight": 0,
            "admitted": 0,
            "throttled": 1,
            "timed_out": 0,
            "completed": 0,
            "failed": 0,
        },
        # clients without a row (and ids the dashboard would refuse) are reported as `*`
        "*": {
            "uploads_in_progress": 2,
            "bytes_in_flight": 75,
            "admitted": 3,
            "throttled": 0,
            "timed_out": 0,
            "completed": 0,
            "failed": 1,
        },
    }
    assert (reporter.sent, reporter.queued, reporter.dropped, reporter.last_error) == (1, 0, 0, None)


def test_counters_are_reset_by_a_report_and_sequences_increase(make_gate, make_reporter, dashboard):
    gate = make_gate(table_rows())
    lease = gate.admit("theirstory-sdk", 10).lease
    reporter = make_reporter(gate, dashboard.url)
    reporter.send_now()
    gate.release(lease, "completed")
    reporter.send_now()
    reporter.send_now()

    first, second, third = dashboard.requests
    assert first["clients"]["theirstory-sdk"]["admitted"] == 1
    assert second["clients"] == {
        "theirstory-sdk": {
            "uploads_in_progress": 0,
            "bytes_in_flight": 0,
            "admitted": 0,
            "throttled": 0,
            "timed_out": 0,
            "completed": 1,
            "failed": 0,
        }
    }
    assert third["clients"] == {}
    assert second["sequence"] == first["sequence"] + 1 and third["sequence"] == second["sequence"] + 1
    assert gate.snapshot_counters(reset=False)["clients"] == {}


def test_the_config_version_is_0_while_the_gate_runs_on_fallback_limits(make_gate, make_reporter, dashboard):
    from upload_gate import StaticSource

    source = StaticSource([])
    source.available = False
    gate = make_gate(source=source, fallback_limits={"max_concurrent_uploads": 1})
    assert gate.config_version is None
    make_reporter(gate, dashboard.url).send_now()
    assert dashboard.requests[0]["config_version"] == 0
    assert schema_errors(dashboard.requests[0], REPORT_SCHEMA) == []


def test_boot_id_is_made_once_per_process_and_sequences_never_repeat_within_it(make_gate, make_reporter, dashboard):
    gate = make_gate(table_rows())
    make_reporter(gate, dashboard.url).send_now()
    make_reporter(gate, dashboard.url).send_now()  # a second reporter in the same process
    first, second = dashboard.requests
    assert first["boot_id"] == second["boot_id"] == process_boot_id()
    assert schema_errors(first, REPORT_SCHEMA) == []
    assert second["sequence"] > first["sequence"]


# -- the dashboard down, wrong answers, the queue ---------------------------------------------------
def test_reports_wait_while_the_dashboard_is_down_then_arrive_in_order_with_their_sequences(make_gate, make_reporter):
    gate = make_gate(table_rows())
    down = FakeDashboard()
    down.respond = lambda report: (503, {"error": "the dashboard's database is unavailable"})
    reporter = make_reporter(gate, down.url)
    for _ in range(2):
        gate.admit("alice", 1)
        assert reporter.send_now() == 0
    assert "503" in reporter.last_error
    down.stop()  # now nothing listens: connection refused
    for _ in range(2):
        gate.admit("alice", 1)
        assert reporter.send_now() == 0
    assert "Connection" in reporter.last_error
    assert (reporter.sent, reporter.queued, reporter.dropped) == (0, 4, 0)
    attempted = down.sequences

    back = FakeDashboard(port=down.port)  # the dashboard comes back on the same address
    try:
        assert reporter.send_now() == 5
        assert back.sequences[0] == attempted[0]  # the oldest first, with the number it had
        assert back.sequences == list(range(back.sequences[0], back.sequences[0] + 5))
        assert [r["clients"].get("*", {}).get("admitted", 0) for r in back.requests] == [1, 1, 1, 1, 0]
        assert (reporter.sent, reporter.queued, reporter.dropped, reporter.last_error) == (5, 0, 0, None)
    finally:
        back.stop()


@pytest.mark.parametrize("status", [400, 401, 403, 413])
def test_a_4xx_drops_the_report_instead_of_retrying_it(make_gate, make_reporter, dashboard, status):
    gate = make_gate(table_rows())
    dashboard.respond = lambda report: (status, {"error": "invalid report", "fields": {"x": "wrong"}})
    reporter = make_reporter(gate, dashboard.url)
    reporter.send_now()
    assert (reporter.sent, reporter.queued, reporter.dropped, reporter.rejected) == (0, 0, 1, 1)
    assert str(status) in reporter.last_error and "invalid report" in reporter.last_error
    dashboard.respond = lambda report: (202, {"status": "accepted", "sequence": report["sequence"]})
    reporter.send_now()
    first, second = dashboard.sequences
    assert second == first + 1  # the refused report was not sent again
    assert (reporter.sent, reporter.queued, reporter.dropped) == (1, 0, 1)


def test_a_report_the_dashboard_answers_500_to_is_dropped_after_a_few_attempts(make_gate, make_reporter, dashboard):
    # A report the dashboard fails on (it once answered 500 to JSON nested too deeply) would
    # otherwise be resent forever, holding every later report behind it.
    gate = make_gate(table_rows())
    dashboard.respond = lambda report: (500, {"error": "server error"})
    reporter = make_reporter(gate, dashboard.url, max_attempts_on_500=3)
    for _ in range(2):
        reporter.send_now()
    assert (reporter.queued, reporter.dropped) == (2, 0)
    reporter.send_now()  # the third 500 to the first report drops it; the next one is tried
    assert (reporter.queued, reporter.dropped, reporter.stats()["dropped_after_500s"]) == (2, 1, 1)
    dashboard.respond = lambda report: (202, {"status": "accepted", "sequence": report["sequence"]})
    assert reporter.send_now() == 3
    first = dashboard.sequences[0]
    assert dashboard.sequences == [first, first, first, first + 1, first + 1, first + 2, first + 3]


def test_a_503_is_retried_for_as_long_as_the_queue_keeps_the_report(make_gate, make_reporter, dashboard):
    gate = make_gate(table_rows())
    dashboard.respond = lambda report: (503, {"error": "the dashboard's database is unavailable"})
    reporter = make_reporter(gate, dashboard.url, max_attempts_on_500=2)
    for _ in range(6):
        reporter.send_now()
    assert (reporter.queued, reporter.dropped) == (6, 0)
    assert len(set(dashboard.sequences)) == 1  # the oldest, again and again


def test_429_is_retried_like_an_outage(make_gate, make_reporter, dashboard):
    gate = make_gate(table_rows())
    dashboard.respond = lambda report: (429, {"error": "slow down"})
    reporter = make_reporter(gate, dashboard.url)
    reporter.send_now()
    assert (reporter.queued, reporter.dropped) == (1, 0)


def test_a_duplicate_counts_as_delivered(make_gate, make_reporter, dashboard):
    gate = make_gate(table_rows())
    dashboard.respond = lambda report: (202, {"status": "duplicate", "sequence": report["sequence"]})
    reporter = make_reporter(gate, dashboard.url)
    assert reporter.send_now() == 1
    assert (reporter.sent, reporter.duplicates, reporter.queued, reporter.dropped) == (1, 1, 0, 0)


def test_the_queue_is_bounded_and_drops_the_oldest_first(make_gate, make_reporter):
    gate = make_gate(table_rows())
    port = closed_port()
    reporter = make_reporter(gate, f"http://127.0.0.1:{port}", max_queued_reports=3)
    first = reporter.collect()
    for _ in range(4):
        reporter.send_now()
    assert (reporter.queued, reporter.dropped, reporter.dropped_overflow, reporter.sent) == (3, 2, 2, 0)
    back = FakeDashboard(port=port)
    try:
        reporter.send_now()
        # 6 reports were made into a queue of 3: the 3 oldest were dropped, the 3 newest arrive.
        assert back.sequences == list(range(first + 3, first + 6))
        assert (reporter.queued, reporter.dropped, reporter.sent) == (0, 3, 3)
    finally:
        back.stop()


def test_a_dashboard_that_does_not_answer_in_time_counts_as_down(make_gate, make_reporter, dashboard):
    answer = threading.Event()

    def hang(report):
        answer.wait(30)
        return 202, {"status": "accepted", "sequence": report["sequence"]}

    dashboard.respond = hang
    reporter = make_reporter(make_gate(table_rows()), dashboard.url, timeout_seconds=0.2)
    try:
        assert reporter.send_now() == 0
        assert (reporter.queued, reporter.dropped) == (1, 0)
        assert "timed out" in reporter.last_error
    finally:
        answer.set()


# -- never in the upload path ---------------------------------------------------------------------
def test_admit_and_release_never_wait_for_a_hanging_dashboard(make_gate, make_reporter, dashboard):
    """While the reporter's thread is stuck in a POST, thousands of admits and releases complete."""
    entered, answer = threading.Event(), threading.Event()

    def hang(report):
        entered.set()
        answer.wait(60)
        return 202, {"status": "accepted", "sequence": report["sequence"]}

    dashboard.respond = hang
    gate = make_gate(table_rows())
    now = [0.0]
    reporter = make_reporter(gate, dashboard.url, clock=lambda: now[0], timeout_seconds=60)
    now[0] = 10.0  # the first report is due
    reporter.start()
    try:
        assert entered.wait(30), "the reporter never posted"
        completed = 0
        for _ in range(5000):
            decision = gate.admit("theirstory-sdk", 1)
            if decision.admitted:
                gate.release(decision.lease, "completed")
            completed += 1
        # Every admit/release finished while the POST was still hanging.
        assert completed == 5000
        assert reporter.sending and not answer.is_set() and reporter.sent == 0
        assert gate.snapshot_counters(reset=False)["clients"]["theirstory-sdk"]["completed"] == 5000
    finally:
        answer.set()
    assert wait_until(lambda: reporter.sent == 1)


def test_the_thread_backs_off_between_attempts_and_sends_in_order_when_back(make_gate, make_reporter, dashboard):
    """Driven on a fake clock: each sleep of the reporter's thread advances it and waits for the test."""
    dashboard.respond = lambda report: (503, {"error": "down"})
    now, sleeps, step = [0.0], [], threading.Semaphore(0)

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds
        step.acquire()

    reporter = make_reporter(
        make_gate(table_rows()),
        dashboard.url,
        interval_seconds=5,
        clock=lambda: now[0],
        sleep=sleep,
        min_backoff_seconds=1,
        max_backoff_seconds=60,
    )
    reporter.start()
    try:
        assert wait_until(lambda: len(sleeps) == 1)
        assert sleeps == [5] and dashboard.requests == []  # nothing is sent before the first interval
        step.release()  # t = 5: report 1 made, POST -> 503, backoff 1 s (+0..20 % jitter)
        assert wait_until(lambda: len(sleeps) == 2)
        assert len(dashboard.requests) == 1 and 1 <= sleeps[1] <= 1.2
        step.release()  # retry -> 503, backoff 2 s
        assert wait_until(lambda: len(sleeps) == 3)
        assert len(dashboard.requests) == 2 and 2 <= sleeps[2] <= 2.4
        step.release()  # retry -> 503, backoff 4 s; the next report is due at t = 10 first
        assert wait_until(lambda: len(sleeps) == 4)
        assert len(dashboard.requests) == 3 and now[0] == pytest.approx(10)
        step.release()  # t = 10: report 2 made and queued; no attempt before the backoff ends
        assert wait_until(lambda: len(sleeps) == 5)
        assert len(dashboard.requests) == 3 and reporter.queued == 2
        dashboard.respond = lambda report: (202, {"status": "accepted", "sequence": report["sequence"]})
        step.release()  # the backoff is over: both go, in order
        assert wait_until(lambda: reporter.sent == 2)
        first = dashboard.sequences[0]
        assert dashboard.sequences == [first, first, first, first, first + 1]
        assert (reporter.queued, reporter.dropped, reporter.failures) == (0, 0, 3)
    finally:
        for _ in range(100):
            step.release()


def test_stop_sends_the_last_figures(make_gate, make_reporter, dashboard):
    gate = make_gate(table_rows())
    reporter = make_reporter(gate, dashboard.url, interval_seconds=3600, start=True)
    gate.admit("theirstory-sdk", 1)
    reporter.stop()
    [report] = dashboard.requests
    assert report["clients"]["theirstory-sdk"]["admitted"] == 1
    reporter.stop()  # a second stop does nothing
    assert len(dashboard.requests) == 1


def test_cpu_percent_defaults_to_a_proc_stat_delta_within_0_to_100(tmp_path):
    from upload_gate.host import ProcStatCpu

    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3\n")
    cpu = ProcStatCpu(str(stat))
    stat.write_text("cpu  250 0 150 900 100 0 0 0 0 0\ncpu0 1 2 3\n")  # +200 busy, +200 idle/iowait
    assert cpu() == 50.0
    assert cpu() == 0.0  # no time passed
    assert 0.0 <= ProcStatCpu()() <= 100.0  # the real /proc/stat (or the load average)


def test_would_have_throttled_is_reported_only_for_clients_with_shadow_limits(make_gate, make_reporter, dashboard):
    gate = make_gate(
        [
            star_row(version=7),
            {
                "client_id": "theirstory-sdk",
                "version": 6,
                "max_concurrent_uploads": 4,
                "shadow_max_concurrent_uploads": 1,
            },
            {"client_id": "other", "version": 6, "max_concurrent_uploads": 1},
        ]
    )
    for _ in range(3):
        gate.admit("theirstory-sdk", 10)
        gate.admit("other", 10)
    reporter = make_reporter(gate, dashboard.url, interval_seconds=5, boot_id="boot-1")

    assert reporter.send_now() == 1

    [report] = dashboard.requests
    assert schema_errors(report, REPORT_SCHEMA) == []
    assert report["clients"]["theirstory-sdk"]["would_have_throttled"] == 2
    assert report["clients"]["theirstory-sdk"]["throttled"] == 0
    assert "would_have_throttled" not in report["clients"]["other"]
    assert report["clients"]["other"]["throttled"] == 2


def test_rows_the_gate_skipped_are_reported_by_row_and_column(make_gate, make_reporter, dashboard):
    rows = [*table_rows(), {"client_id": "typo-partner", "version": 8, "requests_per_minute": 4.5}]
    gate = make_gate(rows)
    reporter = make_reporter(gate, dashboard.url)
    reporter.send_now()
    [report] = dashboard.requests
    assert schema_errors(report, REPORT_SCHEMA) == []
    assert [(bad["client_id"], bad["column"]) for bad in report["bad_rows"]] == [
        ("typo-partner", "requests_per_minute")
    ]
    assert "4.5" in report["bad_rows"][0]["problem"]


def test_a_report_after_the_row_is_fixed_says_there_are_none(make_gate, make_reporter, dashboard):
    source = StaticSource([star_row(version=1), {"client_id": "p", "version": 2, "paused": "false"}])
    gate = make_gate(source=source)
    reporter = make_reporter(gate, dashboard.url)
    reporter.send_now()
    source.set_rows([star_row(version=1), {"client_id": "p", "version": 3, "paused": False}])
    gate.refresh_now()
    reporter.send_now()
    assert [len(report["bad_rows"]) for report in dashboard.requests] == [1, 0]
