"""The load-coupled limits settings on the controls page: ops change them audited; others cannot."""

import pytest
from django.urls import reverse

from core.models import AuditEntry
from partners.models import FleetSettings, PartnerAudit

pytestmark = pytest.mark.django_db


def test_ops_change_the_settings_audited(client, login, ops_user):
    login(ops_user)
    fleet = FleetSettings.load()
    response = client.post(
        reverse("partners:controls-load"),
        {
            "load-load_control_enabled": "on",
            "load-load_cpu_target_percent": "75",
            "load-load_window_seconds": "300",
            "load-load_reserved_share_percent": "25",
            "load-load_decrease_factor": "0.7",
            "load-load_increase_step_percent": "10",
            "load-load_server_upload_capacity": "80",
            "load-reason": "backlog season",
            "load-revision": str(fleet.revision),
        },
    )
    assert response.status_code == 302
    fleet.refresh_from_db()
    assert fleet.load_control_enabled and fleet.load_cpu_target_percent == 75
    entry = AuditEntry.objects.get(action=PartnerAudit.LOAD_CONTROL_CHANGED)
    assert entry.actor == ops_user and entry.reason == "backlog season"
    assert entry.after["load_reserved_share_percent"] == 25


def test_a_bad_setting_is_a_field_error_and_changes_nothing(client, login, ops_user):
    login(ops_user)
    response = client.post(
        reverse("partners:controls-load"),
        {
            "load-load_cpu_target_percent": "150",
            "load-load_window_seconds": "300",
            "load-load_reserved_share_percent": "30",
            "load-load_decrease_factor": "0.7",
            "load-load_increase_step_percent": "10",
            "load-load_server_upload_capacity": "80",
            "load-reason": "typo",
        },
    )
    assert response.status_code == 400
    assert "less than or equal to 100" in response.content.decode()
    assert FleetSettings.load().load_cpu_target_percent == 70
    assert not AuditEntry.objects.filter(action=PartnerAudit.LOAD_CONTROL_CHANGED).exists()


@pytest.mark.parametrize("who", ["manager_a", "engineer"])
def test_only_ops_may_change_the_settings(client, login, request, who):
    login(request.getfixturevalue(who))
    response = client.post(
        reverse("partners:controls-load"),
        {
            "load-load_control_enabled": "on",
            "load-load_cpu_target_percent": "50",
            "load-load_window_seconds": "300",
            "load-load_reserved_share_percent": "30",
            "load-load_decrease_factor": "0.7",
            "load-load_increase_step_percent": "10",
            "load-load_server_upload_capacity": "80",
            "load-reason": "sneaky",
        },
    )
    assert response.status_code == 403
    assert not FleetSettings.load().load_control_enabled
    assert "Save load-coupled limits" not in client.get(reverse("partners:controls")).content.decode()
