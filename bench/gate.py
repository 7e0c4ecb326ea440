"""Benchmark of the upload gate: admit + release pairs on one thread.

    .venv/bin/python bench/gate.py [--pairs 200000] [--skip-redis]
    .venv/bin/python bench/gate.py --smoke      # 5,000 pairs, one round: a second or two

Prints pairs per second, p50 / p99 microseconds per pair, and the database queries made
by the deciding thread (must be 0: decisions never touch the database), in share mode,
in share mode with shadow values on all four rules (`shadow`: the shadow rules are
evaluated too, none binding), and in Redis mode (a redis-server of its own on a free
127.0.0.1 port). All four rules are configured (none binding), so every check runs.
The table is a SQLite file whose connection is wrapped to count statements; the background poller keeps running and its
polls are reported separately. Bounded to well under a minute.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import start_redis  # noqa: E402
from upload_gate import SqliteSource, UploadGate  # noqa: E402

TARGET_PAIRS_PER_SECOND = 200_000
TARGET_P99_MICROSECONDS = 20.0
CLIENTS = [f"partner-{i}" for i in range(100)]


class CountingConnection:
    """A sqlite3 connection that counts the statements each thread runs."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self.by_thread: dict[int, int] = {}

    def execute(self, sql: str, *args):
        with self._lock:
            ident = threading.get_ident()
            self.by_thread[ident] = self.by_thread.get(ident, 0) + 1
        return self._conn.execute(sql, *args)

    def queries(self, thread_id: int | None = None) -> int:
        if thread_id is None:
            return sum(self.by_thread.values())
        return self.by_thread.get(thread_id, 0)

    def close(self) -> None:
        self._conn.close()


# The defaults row: all four limits set far above what one thread reaches, so every check
# runs and none binds. Named columns: a column added to the table later (nullable, as the
# contract requires) stays NULL here instead of breaking the INSERT.
DEFAULTS_ROW = {
    "client_id": "*",
    "requests_per_minute": 6_000_000,
    "burst": 100_000,
    "max_concurrent_uploads": 100_000,
    "max_bytes_in_flight": 10**15,
    "daily_upload_bytes": 10**18,
    "paused": 0,
    "pause_reason": "",
    "priority": "interactive",
    "version": 1,
    "updated_at": "2025-03-01 00:00:00",
    "all_partners_paused": 0,
    "all_partners_pause_reason": "",
    "live_server_count": 1,
}
# Shadow values a tenth of the enforced ones: the shadow rules run on every admit too.
SHADOW_ROW = {
    "shadow_requests_per_minute": 600_000,
    "shadow_burst": 10_000,
    "shadow_max_concurrent_uploads": 10_000,
    "shadow_max_bytes_in_flight": 10**14,
    "shadow_daily_upload_bytes": 10**17,
}


def create_table(path: Path, shadow: bool = False) -> None:
    doc = (REPO / "docs" / "shared-config-table.md").read_text()
    ddl = re.search(r"```sql\n(.*?)```", doc[doc.index("## DDL") :], re.S).group(1)
    row = {**DEFAULTS_ROW, **(SHADOW_ROW if shadow else {})}
    with sqlite3.connect(path) as conn:
        conn.executescript(ddl)
        conn.execute(
            f"INSERT INTO upload_limits ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            list(row.values()),
        )


def run_pairs(gate: UploadGate, pairs: int) -> float:
    """Seconds for `pairs` admit + release pairs, round-robin over 100 client ids."""
    admit, release, clients = gate.admit, gate.release, CLIENTS
    count = len(clients)
    started = time.perf_counter()
    for i in range(pairs):
        release(admit(clients[i % count], 1_000_000).lease)
    return time.perf_counter() - started


def time_each_pair(gate: UploadGate, pairs: int) -> list[int]:
    admit, release, clients, clock = gate.admit, gate.release, CLIENTS, time.perf_counter_ns
    count = len(clients)
    samples = [0] * pairs
    for i in range(pairs):
        started = clock()
        release(admit(clients[i % count], 1_000_000).lease)
        samples[i] = clock() - started
    return samples


def percentile_us(samples: list[int], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] / 1000


def measure(gate: UploadGate, counting: CountingConnection, pairs: int, rounds: int) -> dict:
    me = threading.get_ident()
    run_pairs(gate, min(pairs, 20_000))  # warm-up: client states, caches
    queries_before, polls_before = counting.queries(me), counting.queries()
    gc.collect()
    # Best of a few rounds: this is a shared 2-core machine and other work preempts us.
    best_seconds = min(run_pairs(gate, pairs) for _ in range(rounds))
    samples = time_each_pair(gate, pairs)
    return {
        "pairs_per_second": pairs / best_seconds,
        "p50_us": percentile_us(samples, 0.50),
        "p99_us": percentile_us(samples, 0.99),
        "decision_queries": counting.queries(me) - queries_before,
        "background_queries": counting.queries() - polls_before - (counting.queries(me) - queries_before),
        "pairs": pairs,
    }


def bench_mode(db: Path, pairs: int, rounds: int, **gate_kwargs) -> dict:
    """One gate on the table at db, measured: `rounds` timed runs of `pairs`, best kept."""
    counting = CountingConnection(sqlite3.connect(db, check_same_thread=False))
    gate = UploadGate(source=SqliteSource(db, connect=lambda: counting), poll_interval_seconds=1.0, **gate_kwargs)
    try:
        result = measure(gate, counting, pairs, rounds)
        result["mode"] = gate.mode
        return result
    finally:
        gate.close()


def print_table(results: list[dict]) -> None:
    print(f"{'mode':<8} {'pairs':>8} {'pairs/s':>10} {'p50 us':>8} {'p99 us':>8} {'DB queries':>11} {'bg queries':>10}")
    for r in results:
        print(
            f"{r['mode']:<8} {r['pairs']:>8} {r['pairs_per_second']:>10,.0f} {r['p50_us']:>8.2f} "
            f"{r['p99_us']:>8.2f} {r['decision_queries']:>11} {r['background_queries']:>10}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200_000, help="pairs per measured round (share mode)")
    parser.add_argument("--redis-pairs", type=int, default=10_000, help="pairs per measured round (Redis mode)")
    parser.add_argument("--skip-redis", action="store_true")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="every mode with 5,000 pairs (Redis 300), one round: seconds, for the test suite",
    )
    args = parser.parse_args()
    rounds, redis_rounds = 5, 2
    if args.smoke:
        args.pairs, args.redis_pairs, rounds, redis_rounds = 5_000, 300, 1, 1
    load_before = 0.0
    with tempfile.TemporaryDirectory(prefix="gate-bench-") as tmp:
        db = Path(tmp) / "limits.sqlite3"
        create_table(db)
        load_before = os.getloadavg()[0]
        results = [bench_mode(db, args.pairs, rounds)]
        shadow_db = Path(tmp) / "limits-shadow.sqlite3"
        create_table(shadow_db, shadow=True)
        shadow_result = bench_mode(shadow_db, args.pairs, rounds)
        results.append({**shadow_result, "mode": "shadow"})
        redis = None if args.skip_redis else start_redis()
        if redis is not None:
            process, url = redis
            try:
                results.append(bench_mode(db, args.redis_pairs, redis_rounds, redis_url=url, redis_key_prefix="bench"))
            finally:
                process.terminate()
                process.wait(timeout=10)
        elif not args.skip_redis:
            print("redis-server not found: Redis mode skipped (apt-get install redis-server)")
    print_table(results)
    print(
        f"load average (1 min) before the run: {load_before:.2f} on {os.cpu_count()} CPUs "
        f"(other processes slow the figures down; the best of {rounds} round(s) is reported)"
    )
    share = results[0]
    met = share["pairs_per_second"] >= TARGET_PAIRS_PER_SECOND and share["p99_us"] <= TARGET_P99_MICROSECONDS
    no_queries = all(r["decision_queries"] == 0 for r in results)
    print(
        f"targets (share mode): >= {TARGET_PAIRS_PER_SECOND:,} pairs/s and "
        f"p99 <= {TARGET_P99_MICROSECONDS:.0f} us: {'met' if met else 'NOT met'}; "
        f"database queries during decisions: {'0 (ok)' if no_queries else 'NOT 0'}"
    )
    return 0 if no_queries else 1


if __name__ == "__main__":
    sys.exit(main())
