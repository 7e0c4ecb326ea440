"""Benchmark of the gate sidecar: admit + release pairs over its Unix socket, next to one
Redis GCRA script call per decision (the way a Redis rate limiter such as Envoy's ratelimit
service or redis-cell decides), measured in the same run.

    .venv/bin/python bench/sidecar.py [--pairs 20000] [--skip-redis]
    .venv/bin/python bench/sidecar.py --smoke      # a few hundred pairs: seconds

For the sidecar (`python -m upload_gate serve`, a process of its own reading a SQLite table
with all four rules configured, none binding) and for Redis (a redis-server of its own on a
free 127.0.0.1 port, one EVALSHA of a GCRA script per decision through redis-py), it runs
one client process, then four at once, and prints per process count: pairs (decisions) per
second, p50 / p99 microseconds of one pair (decision), and where a pair's time goes: the
client's own CPU (user + system, from getrusage: building the request, the JSON, the
syscalls) and the server's CPU (from /proc/<pid>/stat), both per pair. Each client first
warms up its connection. Bounded to about a minute.

One more row, from one process: the same pairs with the client and every sidecar thread
pinned to CPU 0. It is a diagnosis, not a way to deploy: it shows how much of a pair is the
wake-ups that cross between CPUs (an idle vCPU halts, and waking it is slow).

The header says how this machine's idle vCPUs wait (the cpuidle driver and, with the
KVM guest driver haltpoll, guest_halt_poll_ns: 0 means an idle vCPU halts at once). With
--guest-halt-poll-ns N (root, the haltpoll driver), the one-process pairs also run with
guest halt polling set to N for the rows' duration, then set back: the same code, with
idle vCPUs that poll for up to N ns before they halt (the driver's own default is 200000).

    sudo .venv/bin/python bench/sidecar.py --guest-halt-poll-ns 200000
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import start_redis  # noqa: E402
from upload_gate.client import SidecarClient  # noqa: E402

GOAL_PAIRS_PER_SECOND = 10_000
GOAL_P99_MICROSECONDS = 500.0
# A worker's release does not wait for its answer (SidecarClient.release(wait=False)): the
# answer is read before the next request's own, so a pair is one round trip.
PIPELINED = "sidecar pair (release sent)"
# The same client and framing against a server that decides nothing: what the transport
# alone allows on this machine.
FLOOR = "transport only (no gate)"
# The same pairs with the client and the sidecar pinned to one CPU: no wake-up has to cross
# to the other (halted) vCPU. A diagnosis of where a pair's time goes, not a deployment.
ONE_CPU = "sidecar pair, both on 1 CPU"
# The same pairs while idle vCPUs poll before they halt (--guest-halt-poll-ns).
HALT_POLL_PAIR = "sidecar pair, vCPUs poll"
HALT_POLL_FLOOR = "transport only, vCPUs poll"
CPUIDLE_DRIVER = Path("/sys/devices/system/cpu/cpuidle/current_driver")
GUEST_HALT_POLL_NS = Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns")
CLIENTS = [f"partner-{i}" for i in range(100)]
TICKS = os.sysconf("SC_CLK_TCK")

# GCRA in one script, as redis-cell / Envoy-style limiters do: the theoretical arrival time
# per key, now passed in (microseconds), allow when tat - tolerance <= now.
GCRA_LUA = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
if tat - now > tolerance then
  return {0, tat - tolerance - now}
end
tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
return {1, 0}
"""


# -- servers ---------------------------------------------------------------------------------
def write_table(path: Path) -> None:
    """A `*` row with all four rules set far above what the bench sends: every check runs."""
    ddl = (REPO / "docs" / "shared-config-table.md").read_text()
    section = ddl[ddl.index("## DDL") :]
    sql = section[section.index("```sql") + 6 : section.index("```", section.index("```sql") + 6)]
    with sqlite3.connect(path) as conn:
        conn.executescript(sql)
        conn.execute(
            "INSERT INTO upload_limits (client_id, requests_per_minute, burst, max_concurrent_uploads,"
            " max_bytes_in_flight, daily_upload_bytes, paused, pause_reason, priority, version, updated_at,"
            " all_partners_paused, all_partners_pause_reason, live_server_count)"
            " VALUES ('*', 100000000, 1000000, 100000, 1000000000000000, 100000000000000000, 0, '', 'interactive',"
            " 1, '2025-01-01 00:00:00', 0, '', 1)"
        )


def start_sidecar(tmp: Path) -> tuple[subprocess.Popen, str]:
    db = tmp / "limits.sqlite3"
    write_table(db)
    sock = str(tmp / "gate.sock")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [
        sys.executable,
        "-m",
        "upload_gate",
        "serve",
        f"sqlite:///{db}",
        "--socket",
        sock,
        "--log-level",
        "WARNING",
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(sock)
            return process, sock
        except OSError:
            time.sleep(0.05)
        finally:
            probe.close()
    process.kill()
    raise SystemExit(f"the sidecar did not start: {process.communicate()[1].decode()[-2000:]}")


def floor_server(sock_path: str, ready) -> None:
    """The transport alone: answers admits and releases with canned JSON, deciding nothing
    (the same HTTP/1.1 framing and pipelined answers sent together, a thread per connection)."""
    import threading

    admitted = (
        b'{"admitted":true,"status":200,"reason":"","limit":null,"retry_after_seconds":null,'
        b'"lease_id":"00000000-1","lease_expires_in_seconds":900,"headers":{},"problem":null}'
    )
    answers = {
        b"/v1/admit": b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(admitted), admitted),
        b"/v1/release": b'HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n{"released":true}',
    }

    def serve(conn: socket.socket) -> None:
        try:
            answer_all(conn)
        except ConnectionError:  # the client process ended
            pass

    def answer_all(conn: socket.socket) -> None:
        buffer = b""
        while chunk := conn.recv(65536):
            buffer += chunk
            out = []
            while (end := buffer.find(b"\r\n\r\n")) >= 0:
                head = buffer[:end]
                start = head.lower().find(b"content-length:") + 15
                length = int(head[start : head.find(b"\r\n", start) if b"\r\n" in head[start:] else None])
                if len(buffer) < end + 4 + length:
                    break
                out.append(answers[head.split(b" ", 2)[1]])
                buffer = buffer[end + 4 + length :]
            if out:
                conn.sendall(b"".join(out))

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    listener.listen(64)
    ready.set()
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def start_floor_server(tmp: Path):
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    path = str(tmp / "floor.sock")
    process = context.Process(target=floor_server, args=(path, ready), daemon=True)
    process.start()
    ready.wait(30)
    return process, path


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc/<pid>/stat (all its threads)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


# -- clients (each in a process of its own) ------------------------------------------------------
def sidecar_worker(sock: str, pairs: int, warmup: int, barrier, results, wait_for_release: bool = False) -> None:
    client = SidecarClient(sock, timeout_seconds=5)
    for i in range(warmup):
        client.release(client.admit(CLIENTS[i % 100], 1)["lease_id"], wait=wait_for_release)
    latencies = [0] * pairs
    clock = time.perf_counter_ns
    barrier.wait()
    cpu_start = _own_cpu()
    started = clock()
    for i in range(pairs):
        begin = clock()
        decision = client.admit(CLIENTS[i % 100], 1)
        client.release(decision["lease_id"], "completed", wait=wait_for_release)
        latencies[i] = clock() - begin
        if decision["source"] != "sidecar" or not decision["admitted"]:
            raise SystemExit(f"unexpected decision: {decision}")
    ended = clock()
    results.put((started, ended, _own_cpu() - cpu_start, latencies))


def sidecar_worker_waiting_for_release(sock: str, pairs: int, warmup: int, barrier, results) -> None:
    sidecar_worker(sock, pairs, warmup, barrier, results, wait_for_release=True)


def sidecar_worker_on_cpu_0(sock: str, pairs: int, warmup: int, barrier, results) -> None:
    os.sched_setaffinity(0, {0})
    sidecar_worker(sock, pairs, warmup, barrier, results)


def cpuidle_driver() -> str | None:
    try:
        return CPUIDLE_DRIVER.read_text().strip()
    except OSError:  # not Linux, or no cpuidle
        return None


def idle_vcpus() -> str:
    """How this machine's idle CPUs wait, as the header line says it."""
    driver = cpuidle_driver()
    if driver is None:
        return "cpuidle driver unknown"
    if driver != "haltpoll":
        return f"cpuidle driver {driver}"
    try:
        poll_ns = int(GUEST_HALT_POLL_NS.read_text())
    except (OSError, ValueError):
        return "cpuidle driver haltpoll, guest_halt_poll_ns unknown"
    if poll_ns == 0:
        return "cpuidle driver haltpoll, guest_halt_poll_ns 0 (an idle vCPU halts at once)"
    return f"cpuidle driver haltpoll, guest_halt_poll_ns {poll_ns} (an idle vCPU polls first)"


def halt_poll_refusal() -> str | None:
    """Why guest halt polling cannot be set here, or None if it can."""
    driver = cpuidle_driver()
    if driver is None:
        return "no cpuidle driver is reported"
    if driver != "haltpoll":
        return f"the cpuidle driver is {driver}, not haltpoll (not a KVM guest with it)"
    if not os.access(GUEST_HALT_POLL_NS, os.W_OK):
        return f"{GUEST_HALT_POLL_NS} is not writable (run as root)"
    return None


@contextlib.contextmanager
def guest_halt_polling(poll_ns: int) -> Iterator[None]:
    """guest_halt_poll_ns set to poll_ns inside the block, set back after it, whatever happens."""
    was = GUEST_HALT_POLL_NS.read_text().strip()
    GUEST_HALT_POLL_NS.write_text(str(poll_ns))
    try:
        yield
    finally:
        GUEST_HALT_POLL_NS.write_text(was)


def pin_process(pid: int, cpus: set[int]) -> None:
    """Every thread of a process on these CPUs (the affinity of a pid is its main thread's)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(task), cpus)
        except ProcessLookupError:  # a thread that ended meanwhile
            pass


def redis_worker(url: str, decisions: int, warmup: int, barrier, results) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    script = client.register_script(GCRA_LUA)
    interval_us, tolerance_us = 600, 600 * 1_000_000  # 100 000 per minute, burst a million: never binding
    keys = [f"gcra:{{{name}}}" for name in CLIENTS]
    for i in range(warmup):
        script(keys=(keys[i % 100],), args=(time.time_ns() // 1000, interval_us, tolerance_us))
    latencies = [0] * decisions
    clock = time.perf_counter_ns
    barrier.wait()
    cpu_start = _own_cpu()
    started = clock()
    for i in range(decisions):
        begin = clock()
        allowed, _wait = script(keys=(keys[i % 100],), args=(time.time_ns() // 1000, interval_us, tolerance_us))
        latencies[i] = clock() - begin
        if allowed != 1:
            raise SystemExit("the GCRA rejected: the bench's limits are meant never to bind")
    ended = clock()
    results.put((started, ended, _own_cpu() - cpu_start, latencies))


def _own_cpu() -> float:
    return sum(os.times()[:2])


def run_clients(target, address: str, processes: int, count: int, warmup: int, server_pid: int) -> dict:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(processes + 1)
    results = context.Queue()
    workers = [
        context.Process(target=target, args=(address, count, warmup, barrier, results)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    barrier.wait()  # every client is connected and warm
    server_cpu_start = cpu_seconds(server_pid)
    outcomes = [results.get(timeout=600) for _ in workers]
    server_cpu = cpu_seconds(server_pid) - server_cpu_start
    for worker in workers:
        worker.join(30)
        if worker.exitcode:
            raise SystemExit(f"a client process failed (exit {worker.exitcode})")
    started = min(o[0] for o in outcomes)
    ended = max(o[1] for o in outcomes)
    latencies = sorted(value for o in outcomes for value in o[3])
    total = len(latencies)
    return {
        "processes": processes,
        "per_second": total / ((ended - started) / 1e9),
        "p50_us": latencies[total // 2] / 1000,
        "p99_us": latencies[min(total - 1, int(total * 0.99))] / 1000,
        "client_cpu_us": sum(o[2] for o in outcomes) / total * 1e6,
        "server_cpu_us": server_cpu / total * 1e6,
        "count": total,
    }


# -- the report -------------------------------------------------------------------------------
def meets_goal(row: dict) -> bool:
    return row["per_second"] >= GOAL_PAIRS_PER_SECOND and row["p99_us"] <= GOAL_P99_MICROSECONDS


def print_row(name: str, row: dict) -> None:
    print(
        f"{name:<28} {row['processes']:>5} {row['per_second']:>11,.0f} {row['p50_us']:>9.0f} {row['p99_us']:>9.0f}"
        f" {row['client_cpu_us']:>12.1f} {row['server_cpu_us']:>12.1f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20_000, help="admit+release pairs per client process")
    parser.add_argument("--skip-redis", action="store_true", help="only the sidecar")
    parser.add_argument("--smoke", action="store_true", help="a few hundred pairs, to check the bench runs")
    parser.add_argument(
        "--guest-halt-poll-ns",
        type=int,
        metavar="N",
        help="also run the one-process pairs with idle vCPUs polling up to N ns before they halt (root, haltpoll)",
    )
    args = parser.parse_args()
    if args.guest_halt_poll_ns is not None:
        if args.guest_halt_poll_ns <= 0:
            parser.error("--guest-halt-poll-ns must be more than 0")
        if refusal := halt_poll_refusal():
            parser.error(f"--guest-halt-poll-ns: {refusal}")
    pairs = 300 if args.smoke else args.pairs
    warmup = 50 if args.smoke else 1000
    tmp = Path(tempfile.mkdtemp(prefix="bench-sidecar-"))
    sidecar, sock = start_sidecar(tmp)
    floor, floor_sock = start_floor_server(tmp)
    redis_server = None if args.skip_redis else start_redis()
    rows: list[tuple[str, dict]] = []
    all_cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    can_pin = len(all_cpus) >= 2 and 0 in all_cpus
    try:
        for processes in (1, 4):
            per_process = pairs if processes == 1 else max(1, pairs // 2)
            rows.append(
                (
                    PIPELINED,
                    run_clients(sidecar_worker, sock, processes, per_process, warmup, sidecar.pid),
                )
            )
            rows.append((FLOOR, run_clients(sidecar_worker, floor_sock, processes, per_process, warmup, floor.pid)))
            if processes == 1 and can_pin:
                pin_process(sidecar.pid, {0})
                try:
                    rows.append(
                        (ONE_CPU, run_clients(sidecar_worker_on_cpu_0, sock, 1, per_process, warmup, sidecar.pid))
                    )
                finally:
                    pin_process(sidecar.pid, all_cpus)
            if processes == 1 and args.guest_halt_poll_ns:
                with guest_halt_polling(args.guest_halt_poll_ns):
                    rows.append(
                        (HALT_POLL_PAIR, run_clients(sidecar_worker, sock, 1, per_process, warmup, sidecar.pid))
                    )
                    rows.append(
                        (HALT_POLL_FLOOR, run_clients(sidecar_worker, floor_sock, 1, per_process, warmup, floor.pid))
                    )
            rows.append(
                (
                    "sidecar pair, release waits",
                    run_clients(sidecar_worker_waiting_for_release, sock, processes, per_process, warmup, sidecar.pid),
                )
            )
            if redis_server is not None:
                process, url = redis_server
                rows.append(
                    ("redis GCRA decision", run_clients(redis_worker, url, processes, per_process, warmup, process.pid))
                )
    finally:
        floor.kill()
        sidecar.send_signal(signal.SIGTERM)
        sidecar.wait(30)
        if redis_server is not None:
            redis_server[0].terminate()
            redis_server[0].wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()[0]
    print(
        f"sidecar over its Unix socket vs Redis GCRA (EVALSHA), {os.cpu_count()} cores, load average {load:.1f},"
        f" {idle_vcpus()}"
    )
    print(
        f"{'':<29} {'procs':>5} {'per second':>11} {'p50 µs':>9} {'p99 µs':>9}"
        f" {'client CPU µs':>12} {'server CPU µs':>12}"
    )
    for name, row in rows:
        print_row(name, row)
    one = rows[0][1]
    print()
    wall_us = 1e6 / one["per_second"]
    print(
        f"one client process: a pair takes {wall_us:.0f} µs of wall time, of which {one['client_cpu_us']:.0f} µs is"
        f" the client's own CPU ({100 * one['client_cpu_us'] / wall_us:.0f} %) and {one['server_cpu_us']:.0f} µs the"
        f" sidecar's ({100 * one['server_cpu_us'] / wall_us:.0f} %); the rest is waiting (wake-ups, scheduling)"
    )
    print(
        f"goal >= {GOAL_PAIRS_PER_SECOND:,} pairs/s from one process, idle vCPUs as the header says:"
        f" {one['per_second']:,.0f}"
        f" ({'met' if one['per_second'] >= GOAL_PAIRS_PER_SECOND else 'NOT met'});"
        f" p99 <= {GOAL_P99_MICROSECONDS:.0f} µs: {one['p99_us']:.0f}"
        f" ({'met' if one['p99_us'] <= GOAL_P99_MICROSECONDS else 'NOT met'})"
    )
    floor_row = next(row for name, row in rows if name == FLOOR)
    print(
        f"the transport alone (same client, a server that decides nothing): {floor_row['per_second']:,.0f} pairs/s"
        f" from one process; the gate's decisions and bookkeeping take the sidecar from there to"
        f" {one['per_second']:,.0f}"
    )
    one_cpu = next((row for name, row in rows if name == ONE_CPU), None)
    if one_cpu is not None:
        print(
            f"the same pairs with the client and the sidecar on one CPU: {one_cpu['per_second']:,.0f} pairs/s"
            f" ({one_cpu['client_cpu_us'] + one_cpu['server_cpu_us']:.0f} µs of CPU per pair against"
            f" {one['client_cpu_us'] + one['server_cpu_us']:.0f}); on two CPUs the difference is the wake-ups"
            " that cross to the other, idle, CPU"
        )
    polling = next((row for name, row in rows if name == HALT_POLL_PAIR), None)
    if polling is not None:
        polling_floor = next(row for name, row in rows if name == HALT_POLL_FLOOR)
        print(
            f"the same pairs with guest_halt_poll_ns {args.guest_halt_poll_ns} (idle vCPUs poll before they halt):"
            f" {polling['per_second']:,.0f} pairs/s from one process, p99 {polling['p99_us']:.0f} µs"
            f" ({'met' if meets_goal(polling) else 'NOT met'}); the transport alone"
            f" {polling_floor['per_second']:,.0f}"
        )
    redis_rows = [row for name, row in rows if name.startswith("redis")]
    sidecar_rows = [row for name, row in rows if name == PIPELINED]
    for sidecar_row, redis_row in zip(sidecar_rows, redis_rows):
        faster = sidecar_row["per_second"] > redis_row["per_second"]
        print(
            f"{sidecar_row['processes']} process(es): sidecar pairs/s {sidecar_row['per_second']:,.0f} vs"
            f" Redis GCRA decisions/s {redis_row['per_second']:,.0f}"
            f" ({'more' if faster else 'FEWER'} pairs than decisions)"
        )
    if args.smoke:
        print("(smoke mode: a few hundred pairs; the figures say little)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
