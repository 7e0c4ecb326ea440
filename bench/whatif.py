#!/usr/bin/env python
"""The what-if (/risk/what-if/) against bench/incident.py on the same inputs, and how long one
projection takes (the page computes one per request).

    .venv/bin/python bench/whatif.py

Agreement: for the incident's strategies that a what-if can express (limits in the gate, SDK
pacing) on TheirStory's backlog cut to 300 videos, completion time and fleet CPU while the
backlog runs, from bench/incident.py's code path (strategy.build, run, summarize) and from the
what-if (which simulates 2 h and extrapolates the rest). Then wall time per projection.
"""

import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.incident import summarize  # noqa: E402
from fleet_sim.model import SCENARIOS, LoadModel  # noqa: E402
from fleet_sim.strategies import PARTNER_LIMITS, USER_DEFAULT_LIMITS, GateLimits, SdkPacing  # noqa: E402
from fleet_sim.whatif import SIZE_MIXES, WhatIf, project  # noqa: E402

FILES = 300
VIDEOS = WhatIf("theirstory-sdk", FILES, SIZE_MIXES["large-videos"], 1, default_limits=USER_DEFAULT_LIMITS)
CASES = [
    (GateLimits("limits in the gate", ""), replace(VIDEOS, **PARTNER_LIMITS)),
    (SdkPacing("SDK pacing", ""), replace(VIDEOS, sdk_concurrency=8, default_limits={})),
]
TIMED = [(servers, files, mix) for servers in (1, 2, 4, 8, 16) for files, mix in
         ((2000, "large-videos"), (20000, "mixed"))]


def bench_row(strategy, files: int) -> dict:
    backlog = SCENARIOS["theirstory-backlog"]
    sim = strategy.build(replace(backlog, backlog=replace(backlog.backlog, files=files)), LoadModel(), 1)
    sim.run()
    row = summarize(sim)
    done_at = sim.totals.backlog_done_at
    row["cpu_mean"] = statistics.fmean(sim.totals.cpu_samples[:int(done_at)])
    return row


def timed(what_if: WhatIf):
    started = time.perf_counter()
    projection = project(what_if)
    return projection, time.perf_counter() - started


def main() -> None:
    print(f"agreement with bench/incident.py ({FILES} large videos, 1 server, seed 1)")
    print(f"{'strategy':<22}{'incident done':>14}{'what-if':>10}{'diff':>8}"
          f"{'CPU mean':>10}{'what-if':>9}{'diff':>8}{'CPU p95':>9}{'what-if':>9}")
    for strategy, what_if in CASES:
        row = bench_row(strategy, FILES)
        projection, _ = timed(what_if)
        done_diff = projection.completion_seconds / row["completion_s"] - 1
        cpu_diff = projection.mean_cpu_percent / row["cpu_mean"] - 1
        print(f"{strategy.name:<22}{row['completion_s'] / 3600:>12.2f} h"
              f"{projection.completion_seconds / 3600:>8.2f} h{done_diff:>+8.1%}"
              f"{row['cpu_mean']:>9.1f}%{projection.mean_cpu_percent:>8.1f}%{cpu_diff:>+8.1%}"
              f"{row['cpu_p95']:>8.0f}%{projection.cpu_p95_percent:>8.0f}%")
    print("\nwall time per projection (one request of the what-if page)")
    print(f"{'servers':>8}{'files':>8}  {'mix':<14}{'seconds':>9}{'projected':>11}{'extrapolated':>14}")
    for servers, files, mix in TIMED:
        what_if = WhatIf("theirstory-sdk", files, SIZE_MIXES[mix], servers,
                         max_concurrent_uploads=24 * servers, default_limits=USER_DEFAULT_LIMITS)
        projection, seconds = timed(what_if)
        done = f"{projection.completion_seconds / 3600:.1f} h" if projection.completion_seconds else "—"
        extrapolated = "yes" if projection.extrapolated else "no"
        print(f"{servers:>8}{files:>8}  {mix:<14}{seconds:>9.2f}{done:>11}{extrapolated:>14}")


if __name__ == "__main__":
    main()
