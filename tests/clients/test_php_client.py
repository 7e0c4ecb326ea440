"""The PHP client (clients/php/UploadGate.php) and its presign example against a real sidecar."""

from __future__ import annotations

import http.client
import json
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.clients.conftest import PAUSE_REASON, REPO, Sidecar, binary_or_skip, run
from tests.factories import free_port

CLIENT_TESTS = "clients/php/tests/sidecar_test.php"
EXAMPLE = "clients/php/examples/get_presigned_url.php"
THEIRSTORY = {"Authorization": "Bearer demo-theirstory-token", "Content-Type": "application/json"}


@pytest.fixture
def php() -> str:
    php = binary_or_skip("php", "php-cli php-curl")
    probe = subprocess.run([php, "-r", "echo defined('CURLOPT_UNIX_SOCKET_PATH') ? 'yes' : 'no';"], capture_output=True)
    if probe.stdout != b"yes":
        pytest.skip("PHP's curl extension is missing (apt-get install php-curl); CI installs it")
    return php


def test_php_client_files_have_no_syntax_errors(php):
    for path in ("clients/php/UploadGate.php", EXAMPLE, CLIENT_TESTS):
        run([php, "-l", path], env={})


def test_php_client_decides_through_the_running_sidecar(php, sidecar):
    output = run([php, CLIENT_TESTS], sidecar.environment("running")).stdout
    assert "the third upload beyond concurrency 2 is a 429" in output
    assert output.rstrip().endswith("all passed")


def test_php_client_fails_open_by_default_and_closed_when_configured_once_the_sidecar_stops(php, sidecar):
    sidecar.stop()
    output = run([php, CLIENT_TESTS], sidecar.environment("stopped")).stdout
    assert "fails open by default" in output and "fail-closed client answers 503" in output
    assert output.rstrip().endswith("all passed")


# -- the example: POST /record/getPresignedUrl under PHP's own web server -----------------------
class PhpServer:
    def __init__(self, php: str, sidecar: Sidecar, **environment: str) -> None:
        self.port = free_port()
        env = sidecar.environment("running", **environment)
        self.process = subprocess.Popen(
            [php, "-S", f"127.0.0.1:{self.port}", EXAMPLE],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait_until_listening()

    def _wait_until_listening(self) -> None:
        for _ in range(200):
            try:
                http.client.HTTPConnection("127.0.0.1", self.port, timeout=1).connect()
                return
            except OSError:
                time.sleep(0.025)
        raise RuntimeError("php -S did not listen")

    def post(self, path: str, body: dict, headers: dict = THEIRSTORY) -> tuple[int, dict, dict]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        connection.request("POST", path, json.dumps(body), headers)
        response = connection.getresponse()
        answer = (response.status, dict(response.getheaders()), json.loads(response.read()))
        connection.close()
        return answer

    def presign(self, size_bytes: int = 5 * 1024 * 1024, headers: dict = THEIRSTORY) -> tuple[int, dict, dict]:
        envelope = {"RequestVO": {"data": [{"RecordVO": {"displayName": "interview.mp4", "size": size_bytes}}]}}
        return self.post("/record/getPresignedUrl", envelope, headers)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def presign_endpoint(php, sidecar) -> Iterator[PhpServer]:
    server = PhpServer(php, sidecar)
    yield server
    server.stop()


def test_presign_endpoint_hands_out_a_presigned_post_and_a_lease(presign_endpoint):
    status, headers, body = presign_endpoint.presign()
    assert status == 200
    assert body["presignedPost"]["fields"]["x-amz-meta-upload-lease"] == body["uploadLeaseId"]
    assert body["uploadLeaseId"] and body["gateSource"] == "sidecar"
    assert '"inflight";q=2' in headers["RateLimit-Policy"] and '"inflight";r=1' in headers["RateLimit"]


def test_presign_endpoint_answers_the_third_upload_with_429_the_gates_headers_and_a_problem(presign_endpoint):
    presign_endpoint.presign()
    presign_endpoint.presign()
    status, headers, body = presign_endpoint.presign()
    assert status == 429
    assert headers["Content-Type"] == "application/problem+json"
    assert int(headers["Retry-After"]) == body["retry_after_seconds"] >= 1
    assert '"inflight";r=0' in headers["RateLimit"] and "RateLimit-Policy" in headers
    assert body["type"] == "about:blank" and body["status"] == 429 and body["limit"] == "max_concurrent_uploads"


def test_register_record_releases_the_lease_so_the_next_upload_is_admitted(presign_endpoint):
    _, _, first = presign_endpoint.presign()
    presign_endpoint.presign()
    assert presign_endpoint.presign()[0] == 429
    status, _, body = presign_endpoint.post("/record/registerRecord", {"uploadLeaseId": first["uploadLeaseId"]})
    assert (status, body["leaseReleased"]) == (200, True)
    assert presign_endpoint.presign()[0] == 200
    again = presign_endpoint.post("/record/registerRecord", {"uploadLeaseId": first["uploadLeaseId"]})
    assert again[2]["leaseReleased"] is False


def test_presign_endpoint_refuses_a_missing_token_and_a_bad_size_with_a_problem(presign_endpoint):
    status, _, body = presign_endpoint.presign(headers={"Content-Type": "application/json"})
    assert (status, body["status"]) == (401, 401)
    status, headers, body = presign_endpoint.presign(size_bytes=-5)
    assert (status, body["field"]) == (400, "size")
    assert headers["Content-Type"] == "application/problem+json"


def test_presign_endpoint_of_a_paused_partner_answers_503_with_the_pause_reason(presign_endpoint):
    archive = {**THEIRSTORY, "Authorization": "Bearer demo-archive-token"}  # fas-importer, paused
    status, headers, body = presign_endpoint.presign(headers=archive)
    assert status == 503
    assert body["detail"] == PAUSE_REASON and body["status"] == 503 and int(headers["Retry-After"]) >= 1


def test_presign_endpoint_fails_open_without_the_sidecar_and_closed_when_configured(php, sidecar):
    sidecar.stop()
    server = PhpServer(php, sidecar)
    try:
        status, headers, body = server.presign()
    finally:
        server.stop()
    assert (status, body["gateSource"], body["uploadLeaseId"]) == (200, "fail-open", None)
    assert headers["X-Upload-Gate-Source"] == "fail-open"
    closed = PhpServer(php, sidecar, UPLOAD_GATE_FAIL_MODE="closed")
    try:
        status, headers, body = closed.presign()
    finally:
        closed.stop()
    assert (status, body["source"], headers["Retry-After"]) == (503, "fail-closed", "5")
