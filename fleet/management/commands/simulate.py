"""Run a load scenario in simulated time against the limits in force now.

    python manage.py simulate --scenario theirstory-backlog
    python manage.py simulate --scenario big-user --servers 4 --hours 1

The simulated servers run the real upload gate on a copy of today's `upload_limits` rows,
so ops can see what the limits they set would do to a backlog before it arrives.
"""

import time

from django.core.management.base import BaseCommand, CommandError

from fleet_sim.model import SCENARIOS, LoadModel
from fleet_sim.report import print_table, summarize
from fleet_sim.simulation import Simulation
from partners.models import UploadLimitRow


class Command(BaseCommand):
    help = "Run a load scenario in simulated time against the limits in force now."

    def add_arguments(self, parser):
        parser.add_argument("--scenario", default="theirstory-backlog", choices=sorted(SCENARIOS))
        parser.add_argument(
            "--servers", type=int, default=None, help="upload servers (default: the live server count in the table)"
        )
        parser.add_argument("--hours", type=float, default=None, help="simulated hours (default: the scenario's)")
        parser.add_argument("--seed", type=int, default=1)

    def handle(self, *args, scenario: str, servers: int | None, hours: float | None, seed: int, **options):
        rows = list(UploadLimitRow.objects.values())
        if servers is None:
            servers = next((row["live_server_count"] for row in rows if row["client_id"] == "*"), 1)
        if servers < 1:
            raise CommandError("--servers must be at least 1")
        started = time.perf_counter()
        sim = Simulation(SCENARIOS[scenario], LoadModel(), servers=servers, limit_rows=rows, seed=seed)
        sim.run(until_seconds=hours * 3600 if hours else None)
        label = f"limits in force, {servers} server{'s' if servers != 1 else ''}"
        print_table(scenario, [(label, summarize(sim))], time.perf_counter() - started, write=self.stdout.write)
