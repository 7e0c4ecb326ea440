#!/usr/bin/env python
"""The what-if (/risk/what-if/) against bench/incident.py on the same inputs, and how long one
projection takes (the page computes one per request).

    .venv/bin/python bench/whatif.py
    .venv/bin/python bench/whatif.py --smoke     # 5 videos, two small projections: seconds

Agreement: for the incident's strategies that a what-if can express (limits in the gate, SDK
pacing) on TheirStory's backlog cut to 300 videos, completion time and fleet CPU while the
backlog runs, from bench/incident.py's code path (strategy.build, run, summarize) and from the
what-if (which simulates 2 h and extrapolates the rest). Then wall time per projection.
"""

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fleet_sim.model import SCENARIOS, LoadModel  # noqa: E402
from fleet_sim.report import summarize  # noqa: E402
from fleet_sim.strategies import PARTNER_LIMITS, USER_DEFAULT_LIMITS, GateLimits, SdkPacing  # noqa: E402
from fleet_sim.whatif import HORIZON_SECONDS, SIZE_MIXES, WhatIf, project  # noqa: E402

FILES = 300
TIMED = [
    (servers, files, mix) for servers in (1, 2, 4, 8, 16) for files, mix in ((2000, "large-videos"), (20000, "mixed"))
]
# --smoke: a backlog that finishes in the incident's first simulated half hour, and one
# projection that finishes plus one that is extrapolated, so both branches still run.
SMOKE_FILES = 5
SMOKE_SCENARIO_SECONDS = 1800
SMOKE_TIMED = [(1, 5, "large-videos"), (2, 20000, "mixed")]
SMOKE_HORIZON_SECONDS = 600


def cases(files: int) -> list[tuple]:
    """(incident strategy, the what-if that expresses it) on `files` large videos, one server."""
    videos = WhatIf("theirstory-sdk", files, SIZE_MIXES["large-videos"], 1, default_limits=USER_DEFAULT_LIMITS)
    return [
        (GateLimits("limits in the gate", ""), replace(videos, **PARTNER_LIMITS)),
        (SdkPacing("SDK pacing", ""), replace(videos, sdk_concurrency=8, default_limits={})),
    ]


def bench_row(strategy, files: int, scenario_seconds: float | None) -> dict:
    backlog = SCENARIOS["theirstory-backlog"]
    scenario = replace(backlog, backlog=replace(backlog.backlog, files=files))
    if scenario_seconds:
        scenario = replace(scenario, duration_seconds=scenario_seconds)
    sim = strategy.build(scenario, LoadModel(), 1)
    sim.run()
    row = summarize(sim)
    done_at = sim.totals.backlog_done_at
    row["cpu_mean"] = statistics.fmean(sim.totals.cpu_samples[: int(done_at)])
    return row


def timed(what_if: WhatIf, horizon_seconds: float = HORIZON_SECONDS):
    started = time.perf_counter()
    projection = project(what_if, horizon_seconds=horizon_seconds)
    return projection, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--smoke", action="store_true", help="tiny backlog, two projections: seconds, for the test suite"
    )
    args = parser.parse_args()
    files = SMOKE_FILES if args.smoke else FILES
    scenario_seconds = SMOKE_SCENARIO_SECONDS if args.smoke else None
    horizon_seconds = SMOKE_HORIZON_SECONDS if args.smoke else HORIZON_SECONDS
    print(f"agreement with bench/incident.py ({files} large videos, 1 server, seed 1)")
    print(
        f"{'strategy':<22}{'incident done':>14}{'what-if':>10}{'diff':>8}"
        f"{'CPU mean':>10}{'what-if':>9}{'diff':>8}{'CPU p95':>9}{'what-if':>9}"
    )
    for strategy, what_if in cases(files):
        row = bench_row(strategy, files, scenario_seconds)
        projection, _ = timed(what_if)
        done_diff = projection.completion_seconds / row["completion_s"] - 1
        cpu_diff = projection.mean_cpu_percent / row["cpu_mean"] - 1
        print(
            f"{strategy.name:<22}{row['completion_s'] / 3600:>12.2f} h"
            f"{projection.completion_seconds / 3600:>8.2f} h{done_diff:>+8.1%}"
            f"{row['cpu_mean']:>9.1f}%{projection.mean_cpu_percent:>8.1f}%{cpu_diff:>+8.1%}"
            f"{row['cpu_p95']:>8.0f}%{projection.cpu_p95_percent:>8.0f}%"
        )
    print("\nwall time per projection (one request of the what-if page)")
    print(f"{'servers':>8}{'files':>8}  {'mix':<14}{'seconds':>9}{'projected':>11}{'extrapolated':>14}")
    for servers, files, mix in SMOKE_TIMED if args.smoke else TIMED:
        what_if = WhatIf(
            "theirstory-sdk",
            files,
            SIZE_MIXES[mix],
            servers,
            max_concurrent_uploads=24 * servers,
            default_limits=USER_DEFAULT_LIMITS,
        )
        projection, seconds = timed(what_if, horizon_seconds)
        done = f"{projection.completion_seconds / 3600:.1f} h" if projection.completion_seconds else "—"
        extrapolated = "yes" if projection.extrapolated else "no"
        print(f"{servers:>8}{files:>8}  {mix:<14}{seconds:>9.2f}{done:>11}{extrapolated:>14}")


if __name__ == "__main__":
    main()
