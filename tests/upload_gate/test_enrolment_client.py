"""The host side of enrolment without Django: who the host is, the token file its processes
share, and what enrol()/deregister() make of the dashboard's answers (a small fake dashboard)."""

import http.server
import json
import os
import threading

import pytest

from upload_gate import enrolment, host


class FakeEnrolmentDashboard:
    """Answers POST /api/v1/enrol and /api/v1/deregister with `answers[path]` (status, body)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict, str]] = []
        self.answers: dict[str, tuple[int, dict]] = {}
        self.enrolments = 0
        dashboard = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                dashboard.calls.append((self.path, body, self.headers["Authorization"]))
                if self.path == enrolment.ENROL_PATH:
                    dashboard.enrolments += 1
                default = (
                    201,
                    {"server_id": body.get("name") or body.get("host_id"), "token": f"uos_{len(dashboard.calls)}"},
                )
                status, answer = dashboard.answers.get(self.path, default)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if status == 429:
                    self.send_header("Retry-After", "120")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def dashboard():
    fake = FakeEnrolmentDashboard()
    yield fake
    fake.stop()


def test_enrol_sends_the_secret_and_who_the_host_is(dashboard):
    enrolled = enrolment.enrol(dashboard.url, "uoe_s", "i-0abc", instance_id="i-0abc", scaling_group="uploads")
    assert (enrolled.server_id, enrolled.token) == ("i-0abc", "uos_1")
    path, body, authorization = dashboard.calls[0]
    assert path == "/api/v1/enrol" and authorization == "Bearer uoe_s"
    assert body == {"host_id": "i-0abc", "instance_id": "i-0abc", "scaling_group": "uploads"}


@pytest.mark.parametrize(
    "status,retryable", [(401, False), (403, False), (409, False), (400, False), (429, True), (503, True)]
)
def test_a_refused_enrolment_says_whether_trying_again_can_help(dashboard, status, retryable):
    dashboard.answers[enrolment.ENROL_PATH] = (status, {"error": "no", "fields": {"host_id": "required"}})
    with pytest.raises(enrolment.EnrolmentError) as refused:
        enrolment.enrol(dashboard.url, "uoe_s", "i-0abc")
    assert refused.value.status == status and refused.value.retryable is retryable
    assert f"HTTP {status}" in str(refused.value)
    if status == 429:
        assert refused.value.retry_after_seconds == 120


def test_an_unreachable_dashboard_is_worth_trying_again(dashboard):
    url = dashboard.url
    dashboard.stop()
    with pytest.raises(enrolment.EnrolmentError) as refused:
        enrolment.enrol(url, "uoe_s", "i-0abc", timeout_seconds=2)
    assert refused.value.status is None and refused.value.retryable


def test_deregister_tells_a_refused_token_from_a_failure(dashboard):
    dashboard.answers[enrolment.DEREGISTER_PATH] = (200, {"status": "deregistered"})
    assert enrolment.deregister(dashboard.url, "uos_1", reason="deploy") is True
    assert dashboard.calls[-1][1:] == ({"reason": "deploy"}, "Bearer uos_1")
    dashboard.answers[enrolment.DEREGISTER_PATH] = (401, {"error": "unknown token"})
    assert enrolment.deregister(dashboard.url, "uos_1") is False
    dashboard.answers[enrolment.DEREGISTER_PATH] = (503, {"error": "database down"})
    with pytest.raises(enrolment.EnrolmentError):
        enrolment.deregister(dashboard.url, "uos_1")


def test_the_processes_of_one_host_enrol_once_and_share_the_token(dashboard, tmp_path):
    path = tmp_path / "state" / "token.json"
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(enrolment.enrol_once(dashboard.url, "uoe_s", "host-a", path)))
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert dashboard.enrolments == 1 and len({r.token for r in results}) == 1 and len(results) == 6
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"


def test_a_refused_token_is_replaced_once_however_many_processes_saw_it_refused(dashboard, tmp_path):
    path = tmp_path / "token.json"
    first = enrolment.enrol_once(dashboard.url, "uoe_s", "host-a", path)
    again = enrolment.enrol_once(dashboard.url, "uoe_s", "host-a", path, stale_token=first.token)
    # A second process that saw the same token refused finds the new one and does not enrol.
    other = enrolment.enrol_once(dashboard.url, "uoe_s", "host-a", path, stale_token=first.token)
    assert again.token != first.token and other.token == again.token and dashboard.enrolments == 2


def test_forget_removes_only_the_token_it_was_given(tmp_path):
    tokens = enrolment.TokenFile(tmp_path / "token.json")
    tokens.save(enrolment.Enrolment("host-a", "uos_new"))
    tokens.forget("uos_old")
    assert tokens.load().token == "uos_new"
    tokens.forget("uos_new")
    assert tokens.load() is None


def test_an_unreadable_token_file_means_enrolling_again(tmp_path):
    path = tmp_path / "token.json"
    path.write_text("{half a fi")
    assert enrolment.TokenFile(path).load() is None


def test_the_host_id_comes_from_the_environment_the_instance_or_the_host_name(monkeypatch, tmp_path):
    recorded = tmp_path / "instance-id"
    recorded.write_text("i-0cloudinit\n")
    monkeypatch.setattr(host, "CLOUD_INIT_INSTANCE_ID", str(recorded))
    monkeypatch.delenv(host.HOST_ID_ENV, raising=False)
    monkeypatch.delenv(host.INSTANCE_ID_ENV, raising=False)
    assert host.instance_id() == "i-0cloudinit" and host.host_id() == "i-0cloudinit"
    monkeypatch.setenv(host.HOST_ID_ENV, "upload-7")
    assert host.host_id() == "upload-7"
    monkeypatch.setenv(host.HOST_ID_ENV, "bad host id")
    with pytest.raises(ValueError, match="UPLOAD_GATE_HOST_ID"):
        host.host_id()
    monkeypatch.delenv(host.HOST_ID_ENV)
    monkeypatch.setattr(host, "CLOUD_INIT_INSTANCE_ID", str(tmp_path / "missing"))
    assert host.instance_id() == "" and host.host_id() == host.socket.gethostname()


def test_the_reporter_keeps_its_reports_until_it_could_enrol(dashboard, tmp_path):
    from upload_gate import StaticSource, UploadGate
    from upload_gate.reporter import StatusReporter

    gate = UploadGate(source=StaticSource([{"client_id": "*", "version": 1, "live_server_count": 1}]), start=False)
    reporter = StatusReporter(
        gate,
        dashboard.url,
        None,
        None,
        enrolment_secret="uoe_s",
        token_file=str(tmp_path / "token.json"),
        host_id="host-a",
        instance_id="",
        start=False,
        cpu_percent=lambda: 1.0,
    )
    try:
        dashboard.answers[enrolment.ENROL_PATH] = (503, {"error": "database down"})
        assert reporter.send_now() == 0 and reporter.queued == 1 and not reporter.enrolled
        del dashboard.answers[enrolment.ENROL_PATH]
        assert reporter.send_now() == 2 and reporter.queued == 0
        reports = [(path, body, auth) for path, body, auth in dashboard.calls if path == "/api/v1/reports"]
        # Named after the host by the enrolment, sent with the host's own token, queued one included.
        assert [body["server_id"] for _, body, _ in reports] == ["host-a", "host-a"]
        assert {auth for _, _, auth in reports} == {"Bearer uos_2"}
    finally:
        reporter.stop(final_report=False)
        gate.close()


def test_a_host_id_that_is_no_server_name_enrols_under_a_name_made_from_it(dashboard):
    from upload_gate import StaticSource, UploadGate
    from upload_gate.reporter import StatusReporter

    gate = UploadGate(source=StaticSource([{"client_id": "*", "version": 1, "live_server_count": 1}]), start=False)
    reporter = StatusReporter(
        gate, dashboard.url, None, None, enrolment_secret="uoe_s", host_id="k8s:node:7", instance_id="", start=False
    )
    try:
        assert reporter.send_now() == 1
        path, body, _ = dashboard.calls[0]
        assert (path, body["host_id"], body["name"]) == (enrolment.ENROL_PATH, "k8s:node:7", "k8s-node-7")
    finally:
        reporter.stop(final_report=False)
        gate.close()
