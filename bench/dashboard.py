#!/usr/bin/env python
"""Chart endpoint latency over a month of data, and the web process's peak memory.

Seeds 50 upload servers reporting every 5 s for 30 days, stored as the retention policy
keeps them (raw reports for the last 6 hours, minutes for 14 days, ten minutes and hours
for 30), then times every chart endpoint for every range in a separate "web" process and
prints p50/p95 per endpoint and range, and that process's peak RSS.

    .venv/bin/python bench/dashboard.py                    # SQLite and PostgreSQL
    .venv/bin/python bench/dashboard.py --databases sqlite
    .venv/bin/python bench/dashboard.py --smoke            # 3 servers for a day, 2 requests per case

PostgreSQL: DATABASE_URL names the server to create the bench database on (default
postgres://postgres@127.0.0.1:54329/app, as scripts/postgres.sh starts it). --smoke measures
one database: PostgreSQL when DATABASE_URL is a postgres URL, else SQLite.
Targets: p95 <= 100 ms for every range; peak RSS <= 250 MB.
"""

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import PYTHON, fresh_database, postgres_from_environment  # noqa: E402

REPORT_INTERVAL_SECONDS = 5
QUEUES = ("High_Priority", "Low_Priority", "Video")
ENDPOINTS = ["chart-cpu", "chart-uploads", "chart-bytes", "chart-outcomes", "chart-queues", "fleet-status"]
RANGES = ["15m", "1h", "6h", "24h", "7d", "30d"]
TARGET_P95_MS = 100
TARGET_RSS_MB = 250
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:54329/app"


@dataclass(frozen=True)
class Sizes:
    servers: int = 50
    days: int = 30
    partners: int = 10


# A day: every range still reads rows at every resolution (raw, minutes, ten minutes, hours).
SMOKE = Sizes(servers=3, days=1, partners=1)


def live_servers(count: int, now) -> list:
    """`count` upload servers that reported just now (upload-0, upload-1, ...), by id."""
    from monitoring.models import UploadServer

    UploadServer.objects.bulk_create(
        UploadServer(
            name=f"upload-{i}",
            token_hash=f"{i:064d}",
            token_prefix="bench",
            last_seen_at=now,
            silent_after=now + timedelta(seconds=15),
            last_cpu_percent=50,
            last_config_version=1,
        )
        for i in range(count)
    )
    return list(UploadServer.objects.order_by("id"))


def insert_many(model, columns: list[str], rows) -> int:
    """Plain INSERTs in large batches: the ORM's per-object work would dominate seeding."""
    from django.db import connection, transaction

    table = model._meta.db_table
    placeholders = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"
    count, batch = 0, []
    adapt = connection.ops.adapt_datetimefield_value  # SQLite stores UTC text, PostgreSQL timestamptz
    if connection.vendor == "postgresql":
        return _copy_many(connection, table, columns, rows)
    with transaction.atomic(), connection.cursor() as cursor:
        for row in rows:
            batch.append(tuple(adapt(v) if isinstance(v, datetime) else v for v in row))
            if len(batch) == 20000:
                cursor.executemany(sql, batch)
                count += len(batch)
                batch = []
        cursor.executemany(sql, batch)
        count += len(batch)
    return count


def _copy_many(connection, table: str, columns: list[str], rows) -> int:
    """PostgreSQL's COPY: an order of magnitude faster than INSERTs for millions of rows."""
    count = 0
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
    return count


def seed(sizes: Sizes) -> dict:
    """Runs inside the seeding process (Django set up by the caller's environment)."""
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from monitoring import metrics
    from monitoring.models import Rollup, ServerReport
    from partners import changes

    started = time.perf_counter()
    ops = get_user_model().objects.create_user("bench-ops", password="bench-password-123")
    from django.contrib.auth.models import Group

    ops.groups.add(Group.objects.get_or_create(name="ops")[0])
    client_ids = [f"partner-{p}" for p in range(sizes.partners)] + ["*"]
    for p in range(sizes.partners):
        changes.create_partner(
            ops,
            {"name": f"Partner {p}", "slug": f"partner-{p}", "client_id": f"partner-{p}", "priority": "bulk"},
            [],
            "bench",
        )
    now = timezone.now()
    servers = live_servers(sizes.servers, now)

    raw_start = now - timedelta(hours=settings.METRICS_RAW_RETENTION_HOURS)
    clients_json = json.dumps(
        {
            c: {
                "uploads_in_progress": 2,
                "bytes_in_flight": 2 * 10**9,
                "admitted": 3,
                "throttled": 1,
                "timed_out": 0,
                "completed": 3,
                "failed": 0,
            }
            for c in client_ids
        }
    )
    steps = int((now - raw_start).total_seconds() // REPORT_INTERVAL_SECONDS)
    raw_rows = insert_many(
        ServerReport,
        [
            "server_id",
            "sequence",
            "received_at",
            "interval_seconds",
            "cpu_percent",
            "config_version",
            "uploads_in_progress",
            "bytes_in_flight",
            "admitted",
            "throttled",
            "timed_out",
            "completed",
            "failed",
            "clients",
        ],
        (
            (
                server.id,
                step,
                raw_start + timedelta(seconds=step * REPORT_INTERVAL_SECONDS, milliseconds=n * 37),
                REPORT_INTERVAL_SECONDS,
                30 + (step + n) % 60,
                1,
                22,
                22 * 10**9,
                33,
                11,
                0,
                33,
                0,
                clients_json,
            )
            for step in range(steps)
            for n, server in enumerate(servers)
        ),
    )

    series = [(metrics.CPU_PERCENT, metrics.server_subject(s.name)) for s in servers]
    series += [(metrics.CPU_PERCENT, metrics.FLEET)]
    series += [(m, metrics.client_subject(c)) for c in client_ids for m in metrics.GAUGES + metrics.COUNTS]
    series += [(m, metrics.FLEET) for m in metrics.GAUGES + metrics.COUNTS]
    series += [(m, metrics.queue_subject(q)) for q in QUEUES for m in (metrics.QUEUE_VISIBLE, metrics.QUEUE_IN_FLIGHT)]
    retention_days = {
        60: min(sizes.days, settings.METRICS_MINUTE_RETENTION_DAYS),
        600: min(sizes.days, settings.METRICS_TEN_MINUTE_RETENTION_DAYS),
        3600: min(sizes.days, settings.METRICS_HOUR_RETENTION_DAYS),
    }
    rollup_rows = 0
    for resolution, days in retention_days.items():
        first = metrics.bucket_start(now - timedelta(days=days), resolution)
        buckets = int((now - first).total_seconds() // resolution)
        minutes = resolution // 60
        rollup_rows += insert_many(
            Rollup,
            ["metric", "subject", "resolution_seconds", "bucket_start", "sample_count", "total", "minimum", "maximum"],
            (
                (
                    metric,
                    subject,
                    resolution,
                    first + timedelta(seconds=b * resolution),
                    minutes,
                    float((b + k) % 97) * minutes,
                    0.0,
                    float((b + k) % 97) + 3,
                )
                for b in range(buckets)
                for k, (metric, subject) in enumerate(series)
            ),
        )
    return {
        "raw_reports": raw_rows,
        "rollup_rows": rollup_rows,
        "series": len(series),
        "seed_seconds": round(time.perf_counter() - started, 1),
    }


def measure(requests_per_case: int) -> dict:
    """Runs inside the "web" process: only what serving the charts costs is in its RSS."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection, reset_queries
    from django.test import Client
    from django.urls import reverse

    client = Client()
    client.force_login(get_user_model().objects.get(username="bench-ops"))
    results = {}
    for endpoint in ENDPOINTS:
        for range_name in RANGES:
            url = reverse(endpoint)
            client.get(url, {"range": range_name})  # warm
            queries = []

            def count(execute, sql, *rest, queries=queries):
                queries.append(sql)
                return execute(sql, *rest)

            with connection.execute_wrapper(count):
                response = client.get(url, {"range": range_name})
            assert response.status_code == 200, response.content[:300]
            points = sum(len(t.get("x", [])) for t in response.json().get("traces", []))
            timings = []
            for _ in range(requests_per_case):
                started = time.perf_counter()
                client.get(url, {"range": range_name})
                timings.append((time.perf_counter() - started) * 1000)
                reset_queries()
            timings.sort()
            results[f"{endpoint} {range_name}"] = {
                "p50_ms": timings[len(timings) // 2],
                "p95_ms": timings[math.ceil(len(timings) * 0.95) - 1],
                "queries": len(queries),
                "points": points,
            }
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"cases": results, "peak_rss_mb": rss_mb}


def run_phase(phase: str, env: dict, *args: str) -> dict:
    """One phase in its own process, so the measuring one's RSS holds only what serving costs."""
    out = subprocess.run([PYTHON, __file__, f"--{phase}", *args], env=env, cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{phase} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(database: str, sizes: Sizes, seeded: dict, measured: dict) -> bool:
    print(
        f"\n== {database}: {sizes.servers} servers every {REPORT_INTERVAL_SECONDS} s for {sizes.days} d: "
        f"{seeded['raw_reports']:,} raw reports, {seeded['rollup_rows']:,} rollup rows, "
        f"{seeded['series']} series (seeded in {seeded['seed_seconds']} s)"
    )
    print(f"{'endpoint':<16}" + "".join(f"{r:>16}" for r in RANGES))
    worst = 0.0
    for endpoint in ENDPOINTS:
        cells = []
        for range_name in RANGES:
            case = measured["cases"][f"{endpoint} {range_name}"]
            worst = max(worst, case["p95_ms"])
            cells.append(f"{case['p50_ms']:6.1f}/{case['p95_ms']:6.1f}")
        print(f"{endpoint:<16}" + "".join(f"{c:>16}" for c in cells))
    print("(p50/p95 ms per request, through Django's full middleware stack)")
    points = {k: v["points"] for k, v in measured["cases"].items()}
    queries = sorted({v["queries"] for v in measured["cases"].values()})
    print(f"points drawn per chart: max {max(points.values()):,}; queries per request: {queries}")
    ok = worst <= TARGET_P95_MS and measured["peak_rss_mb"] <= TARGET_RSS_MB
    print(
        f"worst p95 {worst:.1f} ms (target <= {TARGET_P95_MS}); peak RSS of the web process "
        f"{measured['peak_rss_mb']:.0f} MB (target <= {TARGET_RSS_MB}): {'met' if ok else 'NOT met'}"
    )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--requests", type=int, default=40, help="timed requests per endpoint and range")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny fleet, 2 requests per case, one database (DATABASE_URL's if PostgreSQL): seconds",
    )
    parser.add_argument("--seed", type=json.loads, help=argparse.SUPPRESS)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed:
        print(json.dumps(seed(Sizes(**args.seed))))
        return
    if args.measure:
        print(json.dumps(measure(args.requests)))
        return
    sizes, databases, requests = Sizes(), args.databases.split(","), args.requests
    if args.smoke:
        sizes, requests = SMOKE, 2
        # One database: the same code paths either way; DATABASE_URL's PostgreSQL when it names one.
        databases = ["postgres"] if postgres_from_environment() else ["sqlite"]
        if not postgres_from_environment():
            print("PostgreSQL skipped: DATABASE_URL is not a postgres URL")
    all_ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for database in databases:
            postgres_url = (postgres_from_environment() or DEFAULT_POSTGRES) if database == "postgres" else None
            env = fresh_database(Path(tmp), "dashboard", postgres_url)
            # Each chart built on every request: with the 2 s chart cache the timed requests
            # (the same URL, milliseconds apart) would measure cache hits, not the chart.
            env["CHART_CACHE_SECONDS"] = "0"
            seeded = run_phase("seed", env, json.dumps(asdict(sizes)))
            measured = run_phase("measure", env, "--requests", str(requests))
            all_ok &= report(database, sizes, seeded, measured)
    # A smoke run's figures come from a day of data and two requests: no target applies.
    sys.exit(0 if all_ok or args.smoke else 1)


if __name__ == "__main__":
    main()
