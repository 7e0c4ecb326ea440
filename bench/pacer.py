#!/usr/bin/env python
"""The SDK pacer against a live sidecar, side by side with a naive retry loop, in one run.

    .venv/bin/python bench/pacer.py                # 200 items, 4 at once, 0.15 s each: ideal 7.5 s
    .venv/bin/python bench/pacer.py --smoke        # 8 items, 0.05 s each: seconds

Starts `upload-gate serve` on a socket in a temp folder, limits from --fallback-limits (every
client: `max_concurrent_uploads` = --limit), and a small upload endpoint on 127.0.0.1 in front
of it, shaped like Permanent's presign + S3 post: `POST /presign` asks the sidecar (429 / 503
with the gate's headers, or a lease), `POST /store` holds the upload --store-seconds and
releases the lease. Then the same backlog is imported twice, each as its own partner:

- pacer: upload_gate.pacer.Pacer (docs/sdk-pacing.md), up to 16 at once;
- pacer (Node): clients/node/pacer.js through clients/node/examples/pacer-import.js (skipped
  without `node`; its time is measured inside the Node process, without its start-up);
- naive loop: 16 workers, each taking the next item and, when refused, sleeping the
  answer's Retry-After before trying that item again (what an SDK loop does without a pacer).

Prints, for each, the backlog's completion time against the ideal the limit allows
(items × store seconds ÷ limit), throttled attempts (429 / 503) per completed upload, the
most uploads the endpoint saw at once, and whether every item was stored exactly once.
Goal: the pacer within 1.1 × the ideal with fewer than 0.1 throttled attempts per upload.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from upload_gate.client import SidecarClient  # noqa: E402
from upload_gate.pacer import Pacer  # noqa: E402

NAIVE_WORKERS = 16
GOAL_RATIO, GOAL_THROTTLED_PER_UPLOAD = 1.1, 0.1


def start_sidecar(folder: Path, limit: int) -> tuple[subprocess.Popen, str]:
    socket_path = str(folder / "gate.sock")
    command = [sys.executable, "-m", "upload_gate", "serve", "--socket", socket_path]
    command += ["--fallback-limits", json.dumps({"max_concurrent_uploads": limit}), "--log-level", "WARNING"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise RuntimeError(f"upload-gate serve did not start: {line!r}")
    return process, socket_path


class Endpoint:
    """A small upload server in front of the sidecar, as Permanent's API and S3 are to the SDK:

    - `POST /presign {"item": ..., "size_bytes": n}` with `X-Client-Id`: the gate's decision;
      admitted: 200 `{"lease_id": ...}` with the RateLimit fields; rejected: its status
      (429 / 503) with `Retry-After` (and RateLimit unless paused);
    - `POST /store {"item": ..., "lease_id": ...}`: holds the upload for `store_seconds`, keeps
      the item, releases the lease, 200.

    It records every item stored (how often), the refusals by status, the uploads in progress
    (presign admitted, store not ended) and their maximum, and for each admission how many
    were in progress. Also used by tests/clients/test_pacers_live.py.
    """

    def __init__(self, socket_path: str, store_seconds: float) -> None:
        self.gate = SidecarClient(socket_path, timeout_seconds=5.0, fail_open=False)
        self.store_seconds = store_seconds
        self.lock = threading.Lock()
        self.reset()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        self.stored: Counter = Counter()
        self.rejections: Counter = Counter()  # by status
        self.admissions: list[tuple[float, int]] = []  # (monotonic seconds, in progress after it)
        self.in_progress = self.max_in_progress = 0

    @property
    def refused(self) -> int:
        return sum(self.rejections.values())

    def presign(self, client_id: str, size_bytes: int) -> tuple[int, dict, dict]:
        decision = self.gate.admit(client_id, size_bytes)
        with self.lock:
            if not decision["admitted"]:
                self.rejections[decision["status"]] += 1
                return decision["status"], decision["headers"], {"reason": decision["reason"]}
            self.in_progress += 1
            self.max_in_progress = max(self.max_in_progress, self.in_progress)
            self.admissions.append((time.monotonic(), self.in_progress))
        return 200, decision["headers"], {"lease_id": decision["lease_id"]}

    def store(self, item, lease_id: str) -> tuple[int, dict, dict]:
        time.sleep(self.store_seconds)
        with self.lock:
            self.stored[item] += 1
            self.in_progress -= 1
        self.gate.release(lease_id, "completed")
        return 200, {}, {"stored": item}

    def _handler(self):
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = -1  # head and body in one write: no delayed-ACK wait per answer
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 - the http.server hook's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/presign":
                    status, headers, payload = endpoint.presign(self.headers["X-Client-Id"], body["size_bytes"])
                else:
                    status, headers, payload = endpoint.store(body["item"], body["lease_id"])
                data = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in {**headers, "Content-Type": "application/json"}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        return Handler


class Refused(Exception):
    """A 429 / 503 (or any answer >= 400) from the endpoint: status and headers, as the pacer reads."""

    def __init__(self, status: int, headers) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.headers = status, headers


_connections = threading.local()


def post(url: str, client_id: str, path: str, body: dict) -> tuple[int, object, dict]:
    """One request on this thread's kept-alive connection (an SDK keeps its connections)."""
    connection = getattr(_connections, "connection", None)
    if connection is None:
        host, port = url.removeprefix("http://").split(":")
        connection = _connections.connection = http.client.HTTPConnection(host, int(port), timeout=30)
    data = json.dumps(body).encode()
    connection.request("POST", path, data, {"Content-Type": "application/json", "X-Client-Id": client_id})
    answer = connection.getresponse()
    payload = json.loads(answer.read())
    return answer.status, answer.headers, payload


def upload_once(url: str, client_id: str, item, admitted=None) -> None:
    """Presign then store; a refusal raises Refused (status and headers)."""
    status, headers, presign = post(url, client_id, "/presign", {"item": item, "size_bytes": 1_000_000})
    if status >= 400:
        raise Refused(status, headers)
    if admitted is not None:
        admitted(headers)
    post(url, client_id, "/store", {"item": item, "lease_id": presign["lease_id"]})


def run_pacer(url: str, items: int) -> None:
    result = Pacer(lambda item, attempt: upload_once(url, "pacer", item, attempt.admitted)).run(range(items))
    if result.failed:
        raise SystemExit(f"the pacer gave up items: {result.failed[:3]}")


def run_naive(url: str, items: int) -> None:
    queue = list(range(items))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                item = queue.pop(0)
            while True:
                try:
                    upload_once(url, "naive", item)
                    break
                except Refused as refused:
                    time.sleep(float(refused.headers.get("Retry-After") or 1))

    threads = [threading.Thread(target=worker) for _ in range(NAIVE_WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run_node_pacer(url: str, items: int) -> float:
    """The Node pacer's import in its own process; returns the seconds it measured itself."""
    script = REPO / "clients" / "node" / "examples" / "pacer-import.js"
    command = [shutil.which("node"), str(script), url, "pacer-node", str(items)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    if answer["failed"]:
        raise SystemExit(f"the Node pacer gave up items: {answer['failed'][:3]}")
    return answer["seconds"]


def measure(endpoint: Endpoint, name: str, run, items: int, ideal_seconds: float) -> dict:
    endpoint.reset()
    started = time.perf_counter()
    measured_inside = run(endpoint.url, items)
    seconds = measured_inside if measured_inside is not None else time.perf_counter() - started
    return {
        "name": name,
        "seconds": seconds,
        "ratio": seconds / ideal_seconds,
        "throttled_per_upload": endpoint.refused / items,
        "refused": endpoint.refused,
        "max_in_progress": endpoint.max_in_progress,
        "exactly_once": endpoint.stored == Counter(range(items)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--limit", type=int, default=4, help="max_concurrent_uploads of every partner")
    parser.add_argument("--store-seconds", type=float, default=0.15, help="how long one admitted upload takes")
    parser.add_argument("--smoke", action="store_true", help="8 items of 0.05 s: seconds, for the test suite")
    args = parser.parse_args()
    if args.smoke:
        args.items, args.store_seconds = 8, 0.05
    ideal_seconds = args.items * args.store_seconds / args.limit
    folder = Path(tempfile.mkdtemp(prefix="pacer-"))
    sidecar, socket_path = start_sidecar(folder, args.limit)
    try:
        endpoint = Endpoint(socket_path, args.store_seconds)
        rows = [
            measure(endpoint, "pacer", run_pacer, args.items, ideal_seconds),
            *(
                [measure(endpoint, "pacer (Node)", run_node_pacer, args.items, ideal_seconds)]
                if shutil.which("node")
                else []
            ),
            measure(endpoint, f"naive loop ({NAIVE_WORKERS} workers)", run_naive, args.items, ideal_seconds),
        ]
    finally:
        sidecar.terminate()
        sidecar.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
    print_table(args, ideal_seconds, rows)


def print_table(args, ideal_seconds: float, rows: list[dict]) -> None:
    print(
        f"{args.items} items, max_concurrent_uploads {args.limit}, {args.store_seconds:g} s per upload: "
        f"ideal {ideal_seconds:.2f} s (load average {os.getloadavg()[0]:.2f})"
    )
    print(
        f"{'':<26}{'done in s':>10}{'× ideal':>9}{'throttled':>10}{'per upload':>11}"
        f"{'max at once':>12}{'once each':>10}"
    )
    for row in rows:
        print(
            f"{row['name']:<26}{row['seconds']:>10.2f}{row['ratio']:>9.2f}{row['refused']:>10}"
            f"{row['throttled_per_upload']:>11.3f}{row['max_in_progress']:>12}"
            f"{'yes' if row['exactly_once'] else 'NO':>10}"
        )
    for pacer in (row for row in rows if row["name"].startswith("pacer")):
        met = pacer["ratio"] <= GOAL_RATIO and pacer["throttled_per_upload"] < GOAL_THROTTLED_PER_UPLOAD
        print(
            f"goal ({pacer['name']} within {GOAL_RATIO} × ideal, < {GOAL_THROTTLED_PER_UPLOAD} throttled per upload):"
            f" {'met' if met else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
