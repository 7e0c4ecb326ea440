#!/usr/bin/env python
"""How long a limit change takes from the publisher's commit to an upload gate applying it.

    .venv/bin/python bench/propagation.py                  # both backends, 200 changes each
    .venv/bin/python bench/propagation.py --backend sqlite --sqlite-poll-seconds 1.0
    .venv/bin/python bench/propagation.py --smoke          # 10 changes; PostgreSQL from DATABASE_URL only

For each backend, on a fresh migrated database (bench/common.py), a worker process runs
django.setup() with the bench environment, creates a partner, starts a real UploadGate on the
same database, then makes 200 changes with partners.changes.change_limits, one at a time:

- commit time: time.perf_counter_ns() right after the transaction returns (the change, its
  audit entry and published row have committed). change_limits runs inside an outer
  transaction.atomic() (its own block becomes a savepoint) so a second stamp can be taken just
  before the COMMIT is sent: "from COMMIT sent" is an upper bound that includes the COMMIT
  round trip. The gate can apply a change before the publishing thread gets the GIL back
  after COMMIT; such samples are counted and clamped to 0 in the "returned" figures. The
  targets are checked against the upper bound.
- applied time: taken inside the gate by a version-applied hook (a subclass whose
  _apply_snapshot records perf_counter_ns after the new policies are in force and notifies
  a Condition). The publishing thread sleeps on that Condition, so nothing spins: a thread
  polling gate.config_version in a tight loop would compete for the GIL with the gate's own
  threads and add up to a switch interval (5 ms) of delay to what it measures.
- Between changes a random pause (0..20 ms on PostgreSQL, 0..poll interval on SQLite)
  so the changes land at random phases of the poll.

Backends: (a) PostgreSQL, the gate woken by LISTEN/NOTIFY; its poll interval is set to 30 s
so no change can come in by the poll (target p99 <= 50 ms). (b) SQLite, polling only
(target p99 <= poll interval + 50 ms). The PostgreSQL server is DATABASE_URL's (when it is a
postgres URL) or postgres://postgres@127.0.0.1:54329/app; the bench creates bench_propagation
on it. Floor for scale: raw psycopg, one UPDATE + NOTIFY committed, a listener thread
woken by the notification reads the row on a second connection.
"""

import argparse
import json
import math
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import PYTHON, fresh_database, postgres_from_environment  # noqa: E402

DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:54329/app"
NOTIFY_TARGET_MS = 50.0
POLL_SLACK_MS = 50.0
PG_POLL_SECONDS = 30.0


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest rank."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def summary(samples_ns: list[int]) -> dict:
    ms = [value / 1e6 for value in samples_ns]
    if not ms:
        return {"n": 0}
    return {
        "n": len(ms),
        "p50_ms": percentile(ms, 0.50),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": max(ms),
        "min_ms": min(ms),
    }


# -- the worker: one backend, in its own process (django.setup() binds one database) ---------
def worker(args) -> dict:
    import os

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from partners import changes
    from partners.models import Priority
    from upload_gate import UploadGate

    database_url = os.environ["DATABASE_URL"]
    postgres = connection.vendor == "postgresql"
    poll_seconds = PG_POLL_SECONDS if postgres else args.sqlite_poll_seconds
    result = {"backend": "postgresql" if postgres else "sqlite", "poll_interval_s": poll_seconds}
    if postgres:
        result["floor"] = notify_floor(database_url, args.changes, args.timeout_per_change)

    class ObservedGate(UploadGate):
        """The version-applied hook: when the new policies are in force, note the time."""

        def __init__(self, *a, **kw):
            self.applied_ns: dict[int, int] = {}
            self.applied_condition = threading.Condition()
            super().__init__(*a, **kw)

        def _apply_snapshot(self, snapshot):
            super()._apply_snapshot(snapshot)
            now = time.perf_counter_ns()
            with self.applied_condition:
                self.applied_ns.setdefault(snapshot.version or 0, now)
                self.applied_condition.notify_all()

    actor = get_user_model().objects.create_user(f"bench-ops-{os.getpid()}")
    partner = changes.create_partner(
        actor,
        {"name": "Bench Partner", "slug": "bench-partner", "client_id": "bench-sdk", "priority": Priority.BULK},
        [],
        "bench setup",
    )
    gate = ObservedGate(database_url, poll_interval_seconds=poll_seconds, jitter_fraction=0)
    if postgres and not wait_for(lambda: gate.refresher.listening, 10):
        raise SystemExit("the gate's LISTEN connection did not start")
    rng = random.Random(20251128)
    spacing = 0.02 if postgres else poll_seconds
    latencies: list[int] = []  # applied - COMMIT returned (the measure asked for)
    from_commit_sent: list[int] = []  # applied - just before COMMIT was sent (an upper bound)
    missed = 0
    deadline = time.monotonic() + args.max_seconds
    for i in range(args.changes):
        if time.monotonic() > deadline:
            break
        time.sleep(rng.uniform(0, spacing))
        # change_limits' own atomic block runs as a savepoint inside this one, so the COMMIT
        # (and with it the NOTIFY) happens when this block exits: the two stamps bracket it.
        with transaction.atomic():
            change = changes.change_limits(partner, actor, {"max_concurrent_uploads": 1000 + i}, "bench", None)
            commit_sent_ns = time.perf_counter_ns()
        committed_ns = time.perf_counter_ns()
        with gate.applied_condition:
            seen = gate.applied_condition.wait_for(
                lambda version=change.version: version in gate.applied_ns, args.timeout_per_change
            )
        if not seen:
            missed += 1
            continue
        latencies.append(gate.applied_ns[change.version] - committed_ns)
        from_commit_sent.append(gate.applied_ns[change.version] - commit_sent_ns)
    stats = dict(gate.refresher.stats)
    gate.close()
    result.update(
        mechanism="NOTIFY" if postgres else "polling",
        missed=missed,
        before_commit_returned=sum(1 for value in latencies if value < 0),
        from_commit_sent=summary(from_commit_sent),
        refresher=stats,
        **summary([max(0, value) for value in latencies]),
    )
    return result


def wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def notify_floor(dsn: str, count: int, timeout_seconds: float) -> dict:
    """Commit -> notification -> row read, raw psycopg, in the shape the gate uses."""
    import psycopg

    writer = psycopg.connect(dsn)
    listener = psycopg.connect(dsn, autocommit=True)
    reader = psycopg.connect(dsn, autocommit=True)
    writer.execute("CREATE TABLE IF NOT EXISTS propagation_floor (id int PRIMARY KEY, version bigint)")
    writer.execute("INSERT INTO propagation_floor VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET version = 0")
    writer.commit()
    listener.execute("LISTEN propagation_floor")
    read_ns: dict[int, int] = {}
    condition = threading.Condition()
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            for _notify in listener.notifies(timeout=0.2, stop_after=1):
                version = reader.execute("SELECT version FROM propagation_floor WHERE id = 1").fetchone()[0]
                now = time.perf_counter_ns()
                with condition:
                    read_ns.setdefault(version, now)
                    condition.notify_all()

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    rng = random.Random(7)
    samples = []
    for version in range(1, count + 1):
        time.sleep(rng.uniform(0, 0.02))
        writer.execute("UPDATE propagation_floor SET version = %s WHERE id = 1", [version])
        writer.execute("SELECT pg_notify('propagation_floor', %s)", [str(version)])
        writer.commit()
        committed_ns = time.perf_counter_ns()
        with condition:
            if condition.wait_for(lambda version=version: version in read_ns, timeout_seconds):
                samples.append(max(0, read_ns[version] - committed_ns))
    stop.set()
    thread.join(2)
    for conn in (writer, listener, reader):
        conn.close()
    return summary(samples)


# -- the driver ------------------------------------------------------------------------------
def run_backend(name: str, tmp: Path, args, postgres_url: str | None) -> dict:
    try:
        env = fresh_database(tmp, "propagation", postgres_url)
    except Exception as exc:  # PostgreSQL not running: say so, measure the other backend
        return {"backend": name, "error": f"no fresh database: {exc}"}
    command = [
        PYTHON,
        str(Path(__file__).resolve()),
        "--worker",
        "--changes",
        str(args.changes),
        "--sqlite-poll-seconds",
        str(args.sqlite_poll_seconds),
        "--timeout-per-change",
        str(args.timeout_per_change),
        "--max-seconds",
        str(args.max_seconds),
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=args.max_seconds + 120)
    if done.returncode:
        return {"backend": name, "error": done.stderr.strip()[-2000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_table(results: list[dict]) -> bool:
    print(f"{'what':<36} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  {'target':<18} met")
    all_met = True
    for result in results:
        if "error" in result:
            print(f"{result['backend']:<36} not measured: {result['error']}")
            all_met = False
            continue
        floor = result.get("floor")
        if floor and floor.get("n"):
            print(
                f"{'floor: raw psycopg NOTIFY + read':<36} {floor['n']:>4} {floor['p50_ms']:>8.2f} "
                f"{floor['p99_ms']:>8.2f} {floor['max_ms']:>8.2f}  {'(for scale)':<18}"
            )
        if result["mechanism"] == "NOTIFY":
            label = f"postgresql NOTIFY (poll {result['poll_interval_s']:g} s)"
            target_ms = NOTIFY_TARGET_MS
        else:
            label = f"sqlite polling every {result['poll_interval_s'] * 1000:g} ms"
            target_ms = result["poll_interval_s"] * 1000 + POLL_SLACK_MS
        upper = result["from_commit_sent"]
        met = result.get("n", 0) > 0 and result["missed"] == 0 and upper["p99_ms"] <= target_ms
        all_met &= met
        print(
            f"{label:<36} {result['n']:>4} {result['p50_ms']:>8.2f} {result['p99_ms']:>8.2f} "
            f"{result['max_ms']:>8.2f}  {'p99 <= ' + format(target_ms, 'g') + ' ms':<18} "
            f"{'yes' if met else 'NO'}"
        )
        print(
            f"{'  same, from COMMIT sent (upper bnd)':<36} {upper['n']:>4} {upper['p50_ms']:>8.2f} "
            f"{upper['p99_ms']:>8.2f} {upper['max_ms']:>8.2f}"
        )
        notes = [f"missed {result['missed']}"] if result["missed"] else []
        if result["before_commit_returned"]:
            notes.append(
                f"{result['before_commit_returned']} applied before the COMMIT returned to the publisher (counted 0)"
            )
        stats = result["refresher"]
        notes.append(
            f"gate: {stats['reloads']} reloads, {stats['reloads_after_wake']} after a wake, "
            f"{stats['notifications']} notifications, {stats['polls']} version checks"
        )
        print(f"{'':<36}   " + "; ".join(notes))
    return all_met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["all", "postgresql", "sqlite"], default="all")
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--sqlite-poll-seconds", type=float, default=0.25)
    parser.add_argument("--timeout-per-change", type=float, default=5.0)
    parser.add_argument("--max-seconds", type=float, default=180.0, help="per backend")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="10 changes per backend, PostgreSQL only from DATABASE_URL: seconds, for the test suite",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        args.changes, args.max_seconds = 10, 20
    args.timeout_per_change = max(args.timeout_per_change, 2 * args.sqlite_poll_seconds + 1)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    postgres_url = postgres_from_environment() or DEFAULT_POSTGRES
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-propagation-") as tmp:
        if args.backend in ("all", "postgresql") and args.smoke and not postgres_from_environment():
            print("PostgreSQL skipped: DATABASE_URL is not a postgres URL")
        elif args.backend in ("all", "postgresql"):
            results.append(run_backend("postgresql", Path(tmp), args, postgres_url))
        if args.backend in ("all", "sqlite"):
            results.append(run_backend("sqlite", Path(tmp), args, None))
    print(f"commit -> gate applies the new version, {args.changes} changes per backend, one at a time")
    all_met = print_table(results)
    print("all targets met" if all_met else "some target NOT met")


if __name__ == "__main__":
    main()
