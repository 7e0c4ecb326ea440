#!/usr/bin/env python
"""Sustained status-report ingest over loopback, against gunicorn.

Starts gunicorn on 127.0.0.1 (a free port) on a fresh database, registers 50 upload
servers, then posts reports from client threads (keep-alive connections) for a bounded
count and time, and prints reports per second, latency percentiles and errors.

    .venv/bin/python bench/ingest.py                       # SQLite
    DATABASE_URL=postgres://postgres@127.0.0.1:54329/bench_ingest .venv/bin/python bench/ingest.py
    .venv/bin/python bench/ingest.py --smoke               # 200 reports, Python client: seconds

Target: >= 500 reports/s on a 2-core machine (50 servers every 5 s need 10/s).
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import free_port, fresh_database, manage, postgres_from_environment, start_gunicorn  # noqa: E402

SERVERS = 50
TARGET_REPORTS_PER_SECOND = 500


def register_servers(env: dict, count: int) -> dict[str, str]:
    code = (
        "import json; from django.contrib.auth import get_user_model;"
        "from monitoring import servers;"
        "ops = get_user_model().objects.create_user('bench-ops');"
        f"print(json.dumps({{f'upload-{{i}}': servers.register_server(ops, f'upload-{{i}}', 'bench')[1]"
        f" for i in range({count})}}))"
    )
    out = manage(["shell", "-c", code], env)
    return json.loads(out.strip().splitlines()[-1])


def report(server_id: str, sequence: int) -> bytes:
    clients = {
        f"partner-{p}": {
            "uploads_in_progress": p,
            "bytes_in_flight": p * 10**9,
            "admitted": 3,
            "throttled": 1,
            "timed_out": 0,
            "completed": 2,
            "failed": 0,
        }
        for p in range(8)
    }
    clients["*"] = {
        "uploads_in_progress": 30,
        "bytes_in_flight": 10**9,
        "admitted": 40,
        "throttled": 0,
        "timed_out": 0,
        "completed": 38,
        "failed": 0,
    }
    return json.dumps(
        {
            "server_id": server_id,
            "sequence": sequence,
            "boot_id": "bench",
            "interval_seconds": 5,
            "cpu_percent": 40 + sequence % 50,
            "config_version": 1,
            "clients": clients,
        }
    ).encode()


def drive(port: int, tokens: dict[str, str], total_reports: int, max_seconds: float, threads: int) -> dict:
    latencies_ms: list[float] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds
    names = sorted(tokens)
    per_thread = total_reports // threads

    def worker(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine = names[index::threads]
        for n in range(per_thread):
            if time.monotonic() > deadline:
                break
            server_id = mine[n % len(mine)]
            body = report(server_id, n // len(mine) + 1)
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {tokens[server_id]}"}
            started = time.perf_counter()
            try:
                connection.request("POST", "/api/v1/reports", body, headers)
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as error:
                status = 0
                with lock:
                    errors.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            elapsed_ms = (time.perf_counter() - started) * 1000
            with lock:
                latencies_ms.append(elapsed_ms)
                statuses[status] = statuses.get(status, 0) + 1
        connection.close()

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    wall_seconds = time.perf_counter() - started
    latencies_ms.sort()
    return {
        "reports": len(latencies_ms),
        "seconds": wall_seconds,
        "reports_per_second": len(latencies_ms) / wall_seconds,
        "p50_ms": statistics.median(latencies_ms),
        "p95_ms": latencies_ms[int(len(latencies_ms) * 0.95) - 1],
        "p99_ms": latencies_ms[int(len(latencies_ms) * 0.99) - 1],
        "statuses": statuses,
        "errors": errors[:5],
    }


WRK_SCRIPT = r"""
local tokens = {TOKENS}
local names = {NAMES}
local threads, counter = {}, 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  mine, sequence, turn = {}, {}, 0
  for i, name in ipairs(names) do
    if (i - 1) % {THREADS} == id then table.insert(mine, name); sequence[name] = 0 end
  end
end
function request()
  turn = turn + 1
  local name = mine[(turn - 1) % #mine + 1]
  sequence[name] = sequence[name] + 1
  local body = string.gsub({BODY}, "SERVER_ID", name)
  body = string.gsub(body, "SEQUENCE", tostring(sequence[name]))
  return wrk.format("POST", "/api/v1/reports",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. tokens[name]}, body)
end
function done(summary, latency, requests)
  io.write(string.format("RESULT %d %f %f %f %f %d %d %d\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write,
    summary.errors.timeout))
end
"""


def lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def drive_with_wrk(port: int, tokens: dict[str, str], seconds: float, connections: int) -> dict:
    """wrk (C, epoll) drives the load, so the client costs little of the 2 cores."""
    names = sorted(tokens)
    threads = 2
    template = report("SERVER_ID", 0).decode().replace('"sequence": 0', '"sequence": SEQUENCE')
    script = (
        WRK_SCRIPT.replace("{TOKENS}", "{" + ", ".join(f'["{n}"] = "{tokens[n]}"' for n in names) + "}")
        .replace("{NAMES}", "{" + ", ".join(f'"{n}"' for n in names) + "}")
        .replace("{THREADS}", str(threads))
        .replace("{BODY}", lua_string(template))
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script)
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{int(seconds)}s",
            "--timeout",
            "10s",
            "-s",
            file.name,
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout
    os.unlink(file.name)
    fields = next(line for line in out.splitlines() if line.startswith("RESULT")).split()[1:]
    requests, duration, p50, p95, p99 = int(fields[0]), *map(float, fields[1:5])
    non_2xx, socket_errors, timeouts = map(int, fields[5:8])
    return {
        "reports": requests,
        "seconds": duration,
        "reports_per_second": requests / duration,
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "statuses": {"non-2xx": non_2xx},
        "errors": [f"socket errors {socket_errors}, timeouts {timeouts}"] if socket_errors or timeouts else [],
    }


def wait_for(port: int, timeout_seconds: float = 30) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=12000, help="reports to send at most")
    parser.add_argument("--max-seconds", type=float, default=40, help="stop sending after this long")
    parser.add_argument("--threads", type=int, default=8, help="client threads (keep-alive connections)")
    parser.add_argument("--python-client", action="store_true", help="drive with Python threads, not wrk")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (one per core)")
    parser.add_argument("--worker-threads", type=int, default=1, help="threads per gunicorn worker (gthread)")
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class (sync, gthread)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="8 servers, 200 reports from the Python client (wrk may be absent): seconds",
    )
    args = parser.parse_args()
    warm_up_reports = 300
    if args.smoke:
        args.reports, args.max_seconds, args.python_client, warm_up_reports = 200, 5, True, 50

    with tempfile.TemporaryDirectory() as tmp:
        env = fresh_database(Path(tmp), "ingest", postgres_from_environment())
        tokens = register_servers(env, 8 if args.smoke else SERVERS)
        port = free_port()
        gunicorn = start_gunicorn(env, port, args.workers, args.worker_threads, args.worker_class)
        try:
            wait_for(port)
            drive(port, tokens, warm_up_reports, 10, args.threads)  # warm-up: imports, connections
            if shutil.which("wrk") and not args.python_client:
                driver = "wrk"
                result = drive_with_wrk(port, tokens, args.max_seconds, args.threads)
            else:
                driver = "python threads"
                result = drive(port, tokens, args.reports, args.max_seconds, args.threads)
        finally:
            gunicorn.terminate()
            gunicorn.wait(timeout=20)

    database = env["DATABASE_URL"].split(":", 1)[0]
    print(
        f"ingest on {database}: {args.workers} gunicorn {args.worker_class} workers x {args.worker_threads} threads, "
        f"{args.threads} connections ({driver}), {len(tokens)} servers, 9 client ids per report"
    )
    print(f"  reports sent      {result['reports']} in {result['seconds']:.1f} s")
    met = result["reports_per_second"] >= TARGET_REPORTS_PER_SECOND
    print(
        f"  sustained         {result['reports_per_second']:.0f} reports/s "
        f"(target >= {TARGET_REPORTS_PER_SECOND}: {'met' if met else 'NOT met'})"
    )
    print(
        f"  latency           p50 {result['p50_ms']:.1f} ms, p95 {result['p95_ms']:.1f} ms, "
        f"p99 {result['p99_ms']:.1f} ms"
    )
    print(f"  responses         {result['statuses']}  errors: {result['errors'] or 'none'}")


if __name__ == "__main__":
    main()
