"""Both SDK pacers (upload_gate/pacer.py, clients/node/pacer.js) import a backlog through a real
sidecar behind a small upload endpoint, while the partner's limit is lowered, then imports are
paused and resumed: every item is stored exactly once and the endpoint never has more uploads in
progress than the limit in force."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from bench.pacer import Endpoint as UploadEndpoint
from tests.clients.conftest import binary_or_skip, run
from tests.factories import insert_sqlite_row
from upload_gate.pacer import Pacer

CLIENT_ID = "pacer-partner"
ITEMS = 200
FIRST_LIMIT, LOWERED_LIMIT = 6, 3
LOWER_AT, PAUSE_AT = 60, 120  # items stored
PAUSE_SECONDS = 2
# How long an upload takes once admitted: long next to a request (as a file is), short in total.
STORE_SECONDS = 0.1
# The sidecar polls its table every 0.2 s: a change holds within this (a busy machine included).
APPLIED_WITHIN_SECONDS = 1.0


class Phases(threading.Thread):
    """Writes the partner's rows as the import goes: the limit lowered, then a pause that
    resumes by itself (resume_at) and is lifted by hand at the same moment."""

    def __init__(self, sidecar, endpoint: UploadEndpoint) -> None:
        super().__init__(daemon=True)
        self.sidecar, self.endpoint = sidecar, endpoint
        self.lowered_at = self.paused_at = self.resumed_at = None
        self.stop = threading.Event()

    def write(self, version: int, **values) -> None:
        insert_sqlite_row(self.sidecar.database, client_id=CLIENT_ID, version=version, priority="bulk", **values)

    def stored(self) -> int:
        with self.endpoint.lock:
            return sum(self.endpoint.stored.values())

    def run(self) -> None:
        self.wait_for(LOWER_AT)
        self.write(3, max_concurrent_uploads=LOWERED_LIMIT)
        self.lowered_at = time.monotonic()
        self.wait_for(PAUSE_AT)
        resume_at = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=PAUSE_SECONDS)
        self.write(
            4,
            max_concurrent_uploads=LOWERED_LIMIT,
            paused=1,
            pause_reason="fleet recovering",
            resume_at=resume_at.isoformat(sep=" "),
        )
        self.paused_at = time.monotonic()
        self.stop.wait(PAUSE_SECONDS)
        self.write(5, max_concurrent_uploads=LOWERED_LIMIT)
        self.resumed_at = time.monotonic()

    def wait_for(self, stored: int) -> None:
        while self.stored() < stored and not self.stop.is_set():
            time.sleep(0.005)


@pytest.fixture
def endpoint(sidecar):
    insert_sqlite_row(
        sidecar.database, client_id=CLIENT_ID, version=2, priority="bulk", max_concurrent_uploads=FIRST_LIMIT
    )
    with UploadEndpoint(sidecar.socket_path, store_seconds=STORE_SECONDS) as endpoint:
        deadline = time.monotonic() + 10
        while endpoint.gate.health().get("config_version") != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        yield endpoint


def check_the_import(endpoint: UploadEndpoint, phases: Phases, done: list) -> None:
    assert sorted(done) == list(range(ITEMS))
    assert endpoint.stored == {item: 1 for item in range(ITEMS)}, "an item lost or stored twice"
    assert endpoint.max_in_progress <= FIRST_LIMIT
    settled = phases.lowered_at + APPLIED_WITHIN_SECONDS
    over = [(at, n) for at, n in endpoint.admissions if at >= settled and n > LOWERED_LIMIT]
    assert not over, f"admitted above the lowered limit: {over[:5]}"
    during_pause = [
        at for at, _ in endpoint.admissions if phases.paused_at + APPLIED_WITHIN_SECONDS <= at < phases.resumed_at - 0.1
    ]
    assert not during_pause, "admitted while imports were paused"
    assert endpoint.rejections[503] >= 1, "the import never met the pause"
    # The pacer follows RateLimit: a handful of 429s when the limit drops, not one per upload.
    assert endpoint.rejections[429] < 20, endpoint.rejections


def python_upload(url: str):
    def post(path: str, body: dict):
        request = urllib.request.Request(
            f"{url}{path}", json.dumps(body).encode(), {"Content-Type": "application/json", "X-Client-Id": CLIENT_ID}
        )
        return urllib.request.urlopen(request, timeout=30)  # a 429 / 503 raises HTTPError: the pacer reads it

    def upload(item, attempt):
        with post("/presign", {"item": item, "size_bytes": 1000}) as presign:
            attempt.admitted(presign.headers)
            lease_id = json.loads(presign.read())["lease_id"]
        with post("/store", {"item": item, "lease_id": lease_id}) as stored:
            return json.loads(stored.read())["stored"]

    return upload


def test_the_python_pacer_imports_a_backlog_through_a_lowered_limit_and_a_pause(sidecar, endpoint):
    phases = Phases(sidecar, endpoint)
    phases.start()
    result = Pacer(python_upload(endpoint.url)).run(range(ITEMS))
    phases.stop.set()
    phases.join(10)
    assert not result.failed and not result.cancelled
    check_the_import(endpoint, phases, [item for item, _ in result.done])
    assert result.progress.throttled == sum(endpoint.rejections.values())


def test_the_javascript_pacer_imports_a_backlog_through_a_lowered_limit_and_a_pause(sidecar, endpoint):
    node = binary_or_skip("node", "nodejs")
    phases = Phases(sidecar, endpoint)
    phases.start()
    output = run(
        [node, "clients/node/examples/pacer-import.js", endpoint.url, CLIENT_ID, str(ITEMS)], env={}, timeout=120
    )
    phases.stop.set()
    phases.join(10)
    result = json.loads(output.stdout.strip().splitlines()[-1])
    assert not result["failed"] and not result["cancelled"]
    check_the_import(endpoint, phases, result["done"])
    assert result["progress"]["throttled"] == sum(endpoint.rejections.values())
