#!/usr/bin/env python
"""The TheirStory incident, replayed in simulated time under each strategy the team considered.

    .venv/bin/python bench/incident.py                          # theirstory-backlog
    .venv/bin/python bench/incident.py --scenario big-user --seed 7
    .venv/bin/python bench/incident.py --cpu-targets 99 95 90 80 --seeds 1 2   # what the target costs
    .venv/bin/python bench/incident.py --smoke                  # 15 simulated minutes, 20 files

Prints one table: timed-out uploads (direct users, partner), throttled attempts, backlog
completion time against the ideal (the work done while it was pending ÷ the fleet's
capacity), fleet CPU p95, useful throughput as a share of fleet capacity while the backlog is
pending, the machine-hours each strategy pays for, and how often the load-coupled controller
changed the partner's effective limit. docs/load-model.md has the model.
"""

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fleet_sim.model import SCENARIOS, LoadModel, Scenario  # noqa: E402
from fleet_sim.report import print_table, summarize  # noqa: E402
from fleet_sim.strategies import STRATEGIES, LoadCoupledWithScaling  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="theirstory-backlog", choices=sorted(SCENARIOS))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--cpu-targets",
        type=float,
        nargs="+",
        help="only the load-coupled strategy, once per controller CPU target (%%)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="with --cpu-targets: one row per seed")
    parser.add_argument(
        "--smoke", action="store_true", help="the same runs on a scenario cut short: seconds, for the test suite"
    )
    args = parser.parse_args()
    scenario = shortened(SCENARIOS[args.scenario]) if args.smoke else SCENARIOS[args.scenario]
    started = time.perf_counter()
    rows = []
    for name, strategy, seed in runs(args):
        sim = strategy.build(scenario, LoadModel(), seed)
        sim.run()
        rows.append((name, summarize(sim)))
    print_table(args.scenario, rows, time.perf_counter() - started)


def shortened(scenario: Scenario) -> Scenario:
    """15 simulated minutes and a 20-file backlog: every strategy still runs its whole
    code path (the backlog starts and finishes), in well under a second each."""
    backlog = scenario.backlog and replace(scenario.backlog, files=20, concurrency=10)
    return replace(scenario, duration_seconds=15 * 60, backlog=backlog)


def runs(args) -> list[tuple[str, object, int]]:
    """(row name, strategy, seed): every strategy once, or the load-coupled one per target."""
    if not args.cpu_targets:
        return [(strategy.name, strategy, args.seed) for strategy in STRATEGIES]
    load_coupled = next(s for s in STRATEGIES if isinstance(s, LoadCoupledWithScaling))
    return [
        (f"target {target:g} %, seed {seed}", replace(load_coupled, cpu_target_percent=target), seed)
        for target in args.cpu_targets
        for seed in args.seeds or [args.seed]
    ]


if __name__ == "__main__":
    main()
