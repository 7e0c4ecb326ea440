#!/usr/bin/env python
"""The overview's CPU chart for a large fleet: its size and build time. Whatever the fleet's
size it is three traces (the 1-minute fleet average the alert compares, and the band of the
raw reports around it), built from every raw report of the last 15 minutes.

Seeds N servers reporting every 5 s for the last 15 minutes on a fresh database (SQLite, or
PostgreSQL from DATABASE_URL), then builds and encodes the 15-minute CPU chart.

    .venv/bin/python bench/cpu_chart.py --servers 500
    .venv/bin/python bench/cpu_chart.py --smoke      # a few servers, one round
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import fresh_database, postgres_from_environment  # noqa: E402

REPORT_INTERVAL_SECONDS = 5
WINDOW_SECONDS = 15 * 60


def seed(servers: int) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from monitoring.models import ServerReport, UploadServer

    now = timezone.now()
    fleet = [
        UploadServer.objects.create(
            name=f"upload-{i:03d}",
            token_hash=f"{i:064d}",
            token_prefix="bench",
            last_seen_at=now,
            silent_after=now + timedelta(seconds=15),
        )
        for i in range(servers)
    ]
    ServerReport.objects.bulk_create(
        [
            ServerReport(
                server=server,
                sequence=k,
                received_at=now - timedelta(seconds=REPORT_INTERVAL_SECONDS * k + i % 5),
                interval_seconds=REPORT_INTERVAL_SECONDS,
                cpu_percent=10 + i % 80,
                config_version=1,
                uploads_in_progress=1,
                bytes_in_flight=10,
                admitted=1,
                throttled=0,
                timed_out=0,
                completed=1,
                clients={},
            )
            for i, server in enumerate(fleet)
            for k in range(WINDOW_SECONDS // REPORT_INTERVAL_SECONDS)
        ],
        batch_size=5000,
    )


def measure(rounds: int) -> tuple[int, int, float]:
    """(traces, bytes, best build+encode seconds)."""
    from dashboard import charts
    from monitoring.queries import Window

    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        chart = charts.cpu_chart(Window.parse("15m"), 80)
        body = json.dumps(chart)
        best = min(best, time.perf_counter() - started)
    return len(chart["traces"]), len(body), best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=500)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a few servers, one round: seconds, for the test suite",
    )
    args = parser.parse_args()
    rounds = 1 if args.smoke else 5
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(fresh_database(Path(tmp), "cpu_chart", postgres_from_environment()))
        import django

        django.setup()
        servers = 32 if args.smoke else args.servers
        seed(servers)
        database = os.environ["DATABASE_URL"].split(":", 1)[0]
        print(f"CPU chart, 15 min, {servers} servers reporting every {REPORT_INTERVAL_SECONDS} s, {database}")
        traces, size, seconds = measure(rounds)
        print(f"  as drawn  {traces:>4} traces {size / 1e6:>6.2f} MB  build+encode {seconds * 1000:>5.0f} ms")


if __name__ == "__main__":
    main()
