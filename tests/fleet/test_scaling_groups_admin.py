"""Scaling groups are configured by ops in the admin, audited; seeded at migrate with a schedule."""

import pytest
from django.urls import reverse
from django_q.models import Schedule

from core.models import AuditEntry
from fleet.apps import _after_migrate
from fleet.models import ScalingAudit, ScalingGroup

pytestmark = pytest.mark.django_db


def group_form(**overrides) -> dict:
    return {
        "name": "aws-uploads",
        "backend": "aws",
        "aws_group_name": "upload-servers",
        "server_name_prefix": "",
        "min_capacity": 2,
        "max_capacity": 12,
        "cooldown_seconds": 300,
        "change_reason": "the production upload tier",
        **overrides,
    }


def test_ops_add_a_group_in_the_admin_and_it_is_audited(login, ops_user):
    response = login(ops_user).post(reverse("admin:fleet_scalinggroup_add"), group_form())
    assert response.status_code == 302, response.content[:500]
    group = ScalingGroup.objects.get(name="aws-uploads")
    assert (group.backend, group.aws_group_name, group.max_capacity) == ("aws", "upload-servers", 12)
    entry = AuditEntry.objects.get(action=ScalingAudit.SCALING_GROUP_CHANGED)
    assert entry.actor == ops_user and entry.reason == "the production upload tier"
    assert entry.after["max_capacity"] == 12


def test_an_admin_change_records_before_and_after(login, ops_user):
    client = login(ops_user)
    client.post(reverse("admin:fleet_scalinggroup_add"), group_form())
    group = ScalingGroup.objects.get(name="aws-uploads")
    client.post(
        reverse("admin:fleet_scalinggroup_change", args=[group.pk]),
        group_form(max_capacity=20, change_reason="more headroom"),
    )
    entry = AuditEntry.objects.filter(action=ScalingAudit.SCALING_GROUP_CHANGED).first()
    assert (entry.before, entry.after, entry.reason) == ({"max_capacity": 12}, {"max_capacity": 20}, "more headroom")


def test_min_above_max_is_rejected(login, ops_user):
    response = login(ops_user).post(reverse("admin:fleet_scalinggroup_add"), group_form(min_capacity=5, max_capacity=3))
    assert "The minimum must not be above the maximum." in response.content.decode()
    assert response.status_code == 200 and not ScalingGroup.objects.filter(name="aws-uploads").exists()


@pytest.mark.parametrize("role", ["engineer", "manager_a"])
def test_others_cannot_use_the_scaling_admin(login, engineer, manager_a, role):
    user = {"engineer": engineer, "manager_a": manager_a}[role]
    user.is_staff = True
    user.save()
    response = login(user).get(reverse("admin:fleet_scalinggroup_changelist"))
    assert response.status_code == 403


def test_migrate_seeds_the_policy_schedule_and_a_local_group_only_once():
    ScalingGroup.objects.all().delete()
    Schedule.objects.filter(func="fleet.tasks.evaluate_scaling_policies").delete()
    _after_migrate()
    _after_migrate()
    assert Schedule.objects.filter(func="fleet.tasks.evaluate_scaling_policies", minutes=1).count() == 1
    assert list(ScalingGroup.objects.values_list("name", "backend")) == [("local-fleet", "local")]
