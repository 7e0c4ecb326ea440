"""`manage.py run_fleet`: the simulated fleet reports to the dashboard in real time."""

import pytest
from django.core.management import call_command

from fleet.management.commands import run_fleet
from fleet.models import ScalingGroup
from monitoring.models import ServerReport, UploadServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fleet_queries_in_turn(database_turn, monkeypatch):
    """The fleet's own queries (enrolling, reading the desired capacity, deregistering) run in
    this test's thread for the whole run: on in-memory SQLite they take turns with requests."""
    if database_turn is not None:
        for name in ("register", "desired_capacity", "deregister_all"):
            monkeypatch.setattr(run_fleet, name, database_turn(getattr(run_fleet, name)))


def test_the_live_fleet_follows_the_local_group_and_reports(live_server, settings, fleet_queries_in_turn):
    ScalingGroup.objects.update_or_create(
        name="local-fleet", defaults={"backend": ScalingGroup.Backend.LOCAL, "desired_capacity": 2}
    )
    ScalingGroup.objects.exclude(name="local-fleet").delete()
    # Long enough for a retried report: the test's in-memory SQLite refuses a write that meets
    # another (no busy wait there), and the reporter keeps the report and sends it again.
    call_command("run_fleet", "--dashboard-url", live_server.url, "--seconds", "12")
    names = set(UploadServer.objects.values_list("name", flat=True))
    assert names == {"sim-0", "sim-1"}
    reporting = set(ServerReport.objects.values_list("server__name", flat=True))
    assert reporting == {"sim-0", "sim-1"}, "each simulated server posted its status report"
    # They enrolled as hosts of the local group, and stopping the fleet deregistered them.
    for server in UploadServer.objects.all():
        assert (server.host_id, server.scaling_group) == (server.name, "local-fleet")
        assert server.gone_at is not None and "simulated fleet stopped" in server.gone_reason
