"""The fleet status JSON (/api/fleet-status): servers live or silent, and the pauses in force.
(Who may read it and its fixed query count: test_charts.py.)"""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from monitoring.models import UploadServer
from partners import changes
from tests.factories import seed_fleet_metrics


def test_the_fleet_status_lists_servers_and_pauses(login, engineer, ops_user, partner_a):
    changes.pause(partner_a, ops_user, "cooling down", None)
    seed_fleet_metrics(servers=2, minutes=1)
    UploadServer.objects.filter(name="s1").update(silent_after=timezone.now() - timedelta(seconds=1))
    status = login(engineer).get(reverse("fleet-status")).json()
    assert [(s["name"], s["silent"]) for s in status["servers"]] == [("s0", False), ("s1", True)]
    assert status["live_servers"] == 1
    assert status["paused_partners"][0]["reason"] == "cooling down"
