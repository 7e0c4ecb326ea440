#!/usr/bin/env python
"""How long one alert evaluation cycle takes: 50 rules over 50 upload servers with a day of
minute samples (CPU per server, fleet outcomes, partner load, three SQS queues).

    .venv/bin/python bench/alerts.py                 # SQLite
    DATABASE_URL=postgres://postgres@127.0.0.1:54329/app .venv/bin/python bench/alerts.py
    .venv/bin/python bench/alerts.py --smoke         # 5 servers, 10 rules, an hour: seconds

Times evaluation.run() (evaluate every rule, queue and deliver emails) several times: the
first cycle opens alerts and queues emails, the next ones are the steady state.
Target: <= 1 s per cycle.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import PYTHON, fresh_database, postgres_from_environment  # noqa: E402

PARTNERS = 10
QUEUES = ("High_Priority", "Low_Priority", "Video")
TARGET_SECONDS = 1.0


@dataclass(frozen=True)
class Sizes:
    servers: int = 50
    rules: int = 50
    minutes: int = 24 * 60
    cycles: int = 5


# Still above the 8 seeded rules and two cycles: a first cycle that opens alerts, then a steady one.
SMOKE = Sizes(servers=6, rules=10, minutes=60, cycles=2)


def child(sizes: Sizes) -> dict:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.utils import timezone

    from alerting import evaluation
    from alerting.models import AlertRule, Notification
    from bench.dashboard import insert_many, live_servers
    from monitoring import metrics
    from monitoring.models import Rollup

    engineer = get_user_model().objects.create_user("bench-engineer", "eng@example.org", "bench-password-123")
    engineer.groups.add(Group.objects.get_or_create(name="engineers")[0])
    now = timezone.now()
    live_servers(sizes.servers, now)
    # Five hot servers, the rest busy but below every threshold.
    series = [
        (metrics.CPU_PERCENT, metrics.server_subject(f"upload-{i}"), 97.0 if i < 5 else 40.0 + i % 30)
        for i in range(sizes.servers)
    ]
    series += [
        (metrics.CPU_PERCENT, metrics.FLEET, 55.0),
        (metrics.TIMED_OUT, metrics.FLEET, 0.0),
        (metrics.THROTTLED, metrics.FLEET, 20.0),
        (metrics.ADMITTED, metrics.FLEET, 400.0),
        (metrics.UPLOADS_IN_PROGRESS, metrics.FLEET, 300.0),
    ]
    series += [(metrics.UPLOADS_IN_PROGRESS, metrics.client_subject(f"partner-{p}"), 10.0 + p) for p in range(PARTNERS)]
    series += [(metrics.QUEUE_VISIBLE, metrics.queue_subject(q), 2000.0 if q == "Video" else 5.0) for q in QUEUES]
    first = metrics.bucket_start(now - timedelta(minutes=sizes.minutes), 60)
    rows = insert_many(
        Rollup,
        ["metric", "subject", "resolution_seconds", "bucket_start", "sample_count", "total", "minimum", "maximum"],
        (
            (metric, subject, 60, first + timedelta(minutes=b), 1, value + b % 3, value, value + 3)
            for b in range(sizes.minutes + 1)
            for metric, subject, value in series
        ),
    )
    # 8 seeded rules plus per-server, per-queue and fleet rules, up to 50: about a hundred
    # alerts fire (the five hot servers, the deep queue), the rest stays ok.
    extra = sizes.rules - AlertRule.objects.count()
    AlertRule.objects.bulk_create(
        [
            AlertRule(
                slug=f"bench-{n}",
                name=f"Bench rule {n}",
                metric=("cpu_percent", "queue_visible", "uploads_in_progress")[n % 3],
                subject=("server:*", "queue:*", "fleet")[n % 3],
                aggregation=("avg", "max", "min")[n % 3],
                window_seconds=60 * (1 + n % 10),
                threshold=(90 + n % 10, 1000, 250)[n % 3],
                for_seconds=60 * (n % 4),
            )
            for n in range(extra)
        ]
    )
    timings = []
    for cycle in range(sizes.cycles):
        started = time.perf_counter()
        summary = evaluation.run(now + timedelta(minutes=cycle))
        timings.append(time.perf_counter() - started)
    return {
        "rollup_rows": rows,
        "rules": AlertRule.objects.count(),
        "servers": sizes.servers,
        "cycle_seconds": [round(t, 3) for t in timings],
        "last_cycle": summary,
        "notifications": Notification.objects.count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, two cycles: seconds, for the test suite")
    parser.add_argument("--child", type=json.loads, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(Sizes(**args.child))))
        return
    sizes = SMOKE if args.smoke else Sizes()
    postgres = postgres_from_environment()
    with tempfile.TemporaryDirectory() as tmp:
        env = fresh_database(Path(tmp), "alerts", postgres)
        env["EMAIL_URL"] = "dummymail://"
        result = subprocess.run(
            [PYTHON, __file__, "--child", json.dumps(asdict(sizes))], cwd=ROOT, env=env, capture_output=True, text=True
        )
        if result.returncode:
            raise SystemExit(result.stderr)
        figures = json.loads(result.stdout.strip().splitlines()[-1])
    database = "PostgreSQL" if postgres else "SQLite"
    steady = max(figures["cycle_seconds"][1:])
    print(
        f"{database}: {figures['rules']} rules, {figures['servers']} servers, "
        f"{figures['rollup_rows']} minute rows ({sizes.minutes / 60:g} h)"
    )
    print(
        f"  evaluation cycle: first {figures['cycle_seconds'][0] * 1000:.0f} ms (opens alerts; "
        f"{figures['notifications']} emails over all cycles), then max {steady * 1000:.0f} ms "
        f"over {sizes.cycles - 1} cycles  [target <= {TARGET_SECONDS * 1000:.0f} ms] "
        f"{'OK' if max(figures['cycle_seconds']) <= TARGET_SECONDS else 'OVER TARGET'}"
    )
    print(f"  cycles (s): {figures['cycle_seconds']}; last cycle: {figures['last_cycle']}")


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    os.environ.setdefault("DEBUG", "true")  # in-process, local settings (DEBUG is off unless set)
    main()
