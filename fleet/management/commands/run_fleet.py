"""Run the simulated upload fleet in real time against this dashboard (`make run` starts it).

Each simulated server runs the real upload gate on this database and posts status reports
to the dashboard; the fleet follows the desired capacity of the local scaling group.
"""

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connection

from fleet.models import ScalingGroup
from fleet_sim.live import LiveFleet
from monitoring import servers
from monitoring.models import UploadServer


def gate_database_url() -> str:
    """The URL the upload gate reads `upload_limits` from: this app's own database."""
    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{params['NAME']}"
    password = f":{params['PASSWORD']}" if params.get("PASSWORD") else ""
    port = f":{params['PORT']}" if params.get("PORT") else ""
    return f"postgresql://{params['USER']}{password}@{params['HOST'] or 'localhost'}{port}/{params['NAME']}"


def register(name: str) -> str:
    """A fresh token for a simulated server, registering it the first time (as the system)."""
    existing = UploadServer.objects.filter(name=name).first()
    if existing is None:
        return servers.register_server(None, name, "simulated fleet (make run)")[1]
    return servers.rotate_token(existing, None, "simulated fleet restarted (make run)")


def desired_capacity() -> int:
    group = ScalingGroup.objects.filter(backend=ScalingGroup.Backend.LOCAL).order_by("pk").first()
    return group.desired_capacity if group else settings.FLEET_CONFIGURED_SERVER_COUNT


class Command(BaseCommand):
    help = "Run the simulated upload fleet in real time against this dashboard."

    def add_arguments(self, parser):
        parser.add_argument("--dashboard-url", default="http://127.0.0.1:8000")
        parser.add_argument(
            "--seconds", type=float, default=None, help="stop after this long (default: run until Ctrl-C)"
        )
        parser.add_argument("--backlog-every-minutes", type=float, default=20)

    def handle(self, *args, dashboard_url: str, seconds: float | None, backlog_every_minutes: float, **options):
        fleet = LiveFleet(
            gate_database_url(),
            dashboard_url,
            register,
            desired_capacity,
            backlog_every_seconds=backlog_every_minutes * 60,
        )
        self.stdout.write(f"Simulated fleet reporting to {dashboard_url} (follows the local scaling group)")
        try:
            fleet.run(seconds)
        except KeyboardInterrupt:
            pass
