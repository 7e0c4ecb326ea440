"""Run the simulated upload fleet in real time against this dashboard (`make run` starts it).

Each simulated server runs the real upload gate on this database and posts status reports
to the dashboard; the fleet follows the desired capacity of the local scaling group. Its servers
enrol as hosts of that group (monitoring.enrolment, in this process rather than over HTTP, so no
secret is needed): a server a scale-in stops is marked gone (fleet.membership), and stopping
the fleet deregisters the rest, so neither pages anyone.
"""

import signal

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connection

from fleet.models import ScalingGroup
from fleet_sim.live import LiveFleet
from monitoring import enrolment, servers
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
    """A fresh token for a simulated server: it enrols as a host of the local group."""
    existing = UploadServer.objects.filter(name=name, host_id=None).first()
    if existing is not None:  # registered by hand before servers enrolled: keep that entry
        return servers.rotate_token(existing, None, "simulated fleet restarted (make run)")
    group = local_group()
    request = enrolment.EnrolmentRequest(host_id=name, name=name, scaling_group=group.name if group else "")
    return enrolment.enrol_host(request).token


def deregister_all(names) -> None:
    """The fleet stops in order: its servers are gone, not silent."""
    for server in UploadServer.objects.filter(name__in=list(names), gone_at=None):
        enrolment.deregister(server, "simulated fleet stopped")


def local_group() -> ScalingGroup | None:
    return ScalingGroup.objects.filter(backend=ScalingGroup.Backend.LOCAL).order_by("pk").first()


def desired_capacity() -> int:
    group = local_group()
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
        started: list[str] = []

        def register_and_remember(name: str) -> str:
            started.append(name)
            return register(name)

        fleet = LiveFleet(
            gate_database_url(),
            dashboard_url,
            register_and_remember,
            desired_capacity,
            backlog_every_seconds=backlog_every_minutes * 60,
        )
        self.stdout.write(f"Simulated fleet reporting to {dashboard_url} (follows the local scaling group)")
        # make run stops its processes with SIGTERM: stop in order then too (deregistering).
        previous_handler = signal.signal(signal.SIGTERM, _interrupt)
        try:
            fleet.run(seconds)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous_handler)
            deregister_all(started)


def _interrupt(signum, frame):
    raise KeyboardInterrupt
