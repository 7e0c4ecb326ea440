"""Benchmark of the sidecar's PHP and Node clients: admit + release pairs over the Unix socket.

    .venv/bin/python bench/sidecar_clients.py [--pairs 5000]
    .venv/bin/python bench/sidecar_clients.py --smoke      # 200 pairs each: a few seconds

Starts `upload-gate serve` on a socket in a temp folder (limits from --fallback-limits: all
four rules set, none binding, so every check runs) and prints pairs per second and p50 / p99
microseconds per pair for:

- raw: hand-written HTTP/1.1 on one kept-alive connection from Python (no client at all):
  what the sidecar and the socket cost, the floor under every client;
- php kept-alive: clients/php/UploadGate.php, one client for every pair;
- php new connection: a new client (and connection) per pair, as each PHP-FPM request makes;
- node: clients/node, one call after the other, and 8 calls in flight from one process.

A client's own cost per pair is roughly its p50 minus raw's. Skips a language whose binary
is missing. Bounded to well under a minute at the default size.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIMITS = {
    "requests_per_minute": 100_000_000,
    "burst": 1_000_000,
    "max_concurrent_uploads": 1_000_000,
    "max_bytes_in_flight": 10**18,
    "daily_upload_bytes": 10**18,
}


def start_sidecar(folder: Path) -> tuple[subprocess.Popen, str]:
    socket_path = str(folder / "gate.sock")
    command = [sys.executable, "-m", "upload_gate", "serve", "--socket", socket_path]
    command += ["--fallback-limits", json.dumps(LIMITS), "--log-level", "WARNING"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise RuntimeError(f"upload-gate serve did not start: {line!r}")
    return process, socket_path


def raw_pairs(socket_path: str, pairs: int) -> list[float]:
    """Pairs over one connection with no client library: the sidecar's floor."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(socket_path)
    buffer = b""

    def call(path: str, body: bytes) -> dict:
        nonlocal buffer
        conn.sendall(
            f"POST {path} HTTP/1.1\r\nHost: gate\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        while b"\r\n\r\n" not in buffer:
            buffer += conn.recv(65536)
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(buffer) < length:
            buffer += conn.recv(65536)
        answer, buffer = buffer[:length], buffer[length:]
        return json.loads(answer)

    timings = []
    for i in range(pairs):
        started = time.perf_counter_ns()
        decision = call("/v1/admit", b'{"client_id": "bench-raw-%d", "size_bytes": 1048576}' % (i % 100))
        call("/v1/release", json.dumps({"lease_id": decision["lease_id"], "outcome": "completed"}).encode())
        timings.append((time.perf_counter_ns() - started) / 1000)
    conn.close()
    return timings


def client_pairs(command: list[str]) -> tuple[list[float], float | None]:
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr[-2000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    if figures["not_admitted_by_sidecar"]:
        raise RuntimeError(f"{figures['not_admitted_by_sidecar']} pairs were not admitted by the sidecar")
    return figures["microseconds"], figures.get("wall_seconds")


def report(name: str, microseconds: list[float], wall_seconds: float | None = None) -> None:
    ordered = sorted(microseconds)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    elapsed = wall_seconds if wall_seconds is not None else sum(ordered) / 1e6
    print(f"{name:<28} {len(ordered) / elapsed:>10,.0f} pairs/s   p50 {p50:>8.0f} us   p99 {p99:>8.0f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--smoke", action="store_true", help="200 pairs each")
    args = parser.parse_args()
    pairs = 200 if args.smoke else args.pairs
    php, node = shutil.which("php"), shutil.which("node")
    folder = Path(tempfile.mkdtemp(prefix="gate-bench-"))
    sidecar, socket_path = start_sidecar(folder)
    try:
        print(f"admit + release pairs over {socket_path}, {pairs} per line")
        raw_pairs(socket_path, min(200, pairs))  # warm the sidecar up
        report("raw (no client)", raw_pairs(socket_path, pairs))
        if php:
            script = "clients/php/bench/pairs.php"
            report("php kept-alive", client_pairs([php, script, socket_path, str(pairs), "kept-alive"])[0])
            report("php new connection", client_pairs([php, script, socket_path, str(pairs), "new-connection"])[0])
        else:
            print("php: not installed, skipped")
        if node:
            script = "clients/node/bench/pairs.js"
            report("node one at a time", *client_pairs([node, script, socket_path, str(pairs), "1"]))
            report("node 8 in flight", *client_pairs([node, script, socket_path, str(pairs), "8"]))
        else:
            print("node: not installed, skipped")
    finally:
        sidecar.terminate()
        sidecar.wait(timeout=15)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
