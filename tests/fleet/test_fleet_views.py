"""The fleet page, the scaling confirmation and the policy form: who may do what, and what they see."""

import uuid

import pytest
from django.urls import reverse

from core.models import AuditEntry
from fleet.models import ScalingAction, ScalingAudit, ScalingGroup, ScalingPolicy
from tests.factories import make_aws_group, make_local_group, scale_post

ROLES = ["ops", "manager_a", "engineer", "anonymous"]


@pytest.fixture
def users(ops_user, manager_a, engineer, partner_a):
    return {"ops": ops_user, "manager_a": manager_a, "engineer": engineer, "anonymous": None}


@pytest.fixture
def group(db):
    return make_local_group("sim-fleet", desired=2, cooldown_seconds=0)


def policy_post(group, **overrides) -> dict:
    values = {
        "enabled": "on",
        "target_cpu_percent": 60,
        "tolerance_percent": 10,
        "evaluation_minutes": 3,
        "stabilization_minutes": 10,
        "max_step": 3,
        "max_data_age_minutes": 5,
        "reason": "turn it on",
    }
    values.update(overrides)
    return {f"policy-{group.pk}-{k}" if k != "reason" else f"policy-{group.pk}-reason": v for k, v in values.items()}


MATRIX = [
    ("fleet:groups", "get", {"ops": 200, "manager_a": 403, "engineer": 200}),
    ("fleet:scale", "get", {"ops": 200, "manager_a": 403, "engineer": 403}),
    ("fleet:scale", "post", {"ops": 302, "manager_a": 403, "engineer": 403}),
    ("fleet:policy", "post", {"ops": 302, "manager_a": 403, "engineer": 403}),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("url_name,method,expected", MATRIX, ids=[f"{r[0]}-{r[1]}" for r in MATRIX])
def test_role_matrix(login, users, group, role, url_name, method, expected):
    url = reverse(url_name, args=[] if url_name == "fleet:groups" else [group.name])
    data = {"fleet:scale": scale_post(), "fleet:policy": policy_post(group)}.get(url_name)
    client = login(users[role])
    audit_before = AuditEntry.objects.count()
    response = client.post(url, data) if method == "post" else client.get(url, {"to": 3})
    if role == "anonymous":
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
        return
    assert response.status_code == expected[role], response.content[:300]
    if method == "post" and expected[role] != 302:
        assert AuditEntry.objects.count() == audit_before and not ScalingAction.objects.exists()


def test_engineers_see_the_fleet_but_no_scaling_controls(login, engineer, group):
    content = login(engineer).get(reverse("fleet:groups")).content.decode()
    assert "sim-fleet" in content and "Scale to…" not in content and "Policy settings" not in content


def test_the_nav_links_the_fleet_for_ops_and_engineers_only(login, ops_user, manager_a, engineer, partner_a):
    assert 'href="/fleet/"' in login(ops_user).get(reverse("overview")).content.decode()
    assert 'href="/fleet/"' in login(engineer).get(reverse("overview")).content.decode()
    assert 'href="/fleet/"' not in login(manager_a).get(reverse("overview")).content.decode()


def test_the_confirmation_shows_from_and_to_and_carries_a_fresh_key(login, ops_user, group):
    response = login(ops_user).get(reverse("fleet:scale", args=[group.name]), {"to": 3})
    content = response.content.decode()
    assert "2 → <strong>3</strong>" in content
    form = response.context["form"]
    assert isinstance(form.initial["idempotency_key"], uuid.UUID)
    assert 'type="hidden" name="idempotency_key"' in content


def test_the_confirmation_refuses_a_capacity_beyond_the_bounds(login, ops_user, group):
    response = login(ops_user).get(reverse("fleet:scale", args=[group.name]), {"to": 9})
    assert response.status_code == 400
    assert "9 is above the group&#x27;s maximum of 5." in response.content.decode()


def test_confirming_scales_and_the_history_shows_it(login, ops_user, group):
    client = login(ops_user)
    response = client.post(reverse("fleet:scale", args=[group.name]), scale_post(3, reason="TheirStory backlog"))
    assert response.status_code == 302
    group.refresh_from_db()
    assert group.desired_capacity == 3
    page = client.get(reverse("fleet:groups")).content.decode()
    assert "Scaling sim-fleet from 2 to 3: done." in page
    assert "TheirStory backlog" in page and "Succeeded" in page


def test_a_double_click_on_confirm_scales_once(login, ops_user, group):
    client = login(ops_user)
    data = scale_post(3)
    client.post(reverse("fleet:scale", args=[group.name]), data)
    response = client.post(reverse("fleet:scale", args=[group.name]), data, follow=True)
    assert "already requested; it was not repeated" in response.content.decode()
    assert ScalingAction.objects.count() == 1
    group.refresh_from_db()
    assert group.desired_capacity == 3


def test_a_confirmation_without_reason_is_shown_again(login, ops_user, group):
    response = login(ops_user).post(reverse("fleet:scale", args=[group.name]), scale_post(3, reason=""))
    assert response.status_code == 400 and "Say why" in response.content.decode()
    assert not ScalingAction.objects.exists()


def test_the_page_renders_with_the_aws_error_when_aws_fails(login, engineer, group, settings, monkeypatch):
    from monitoring import aws

    def broken():
        raise aws.AwsError("AccessDenied: not allowed to call autoscaling:DescribeAutoScalingGroups")

    monkeypatch.setattr(aws, "autoscaling_client", broken)
    make_aws_group("upload-servers")
    response = login(engineer).get(reverse("fleet:groups"))
    content = response.content.decode()
    assert response.status_code == 200
    assert "AccessDenied: not allowed to call autoscaling:DescribeAutoScalingGroups" in content
    assert "sim-fleet" in content


def test_ops_turn_the_policy_on_and_it_is_audited(login, ops_user, group):
    assert not ScalingPolicy.objects.exists()
    response = login(ops_user).post(reverse("fleet:policy", args=[group.name]), policy_post(group))
    assert response.status_code == 302
    assert ScalingPolicy.objects.get(group=group).enabled
    entry = AuditEntry.objects.get(action=ScalingAudit.SCALING_POLICY_CHANGED)
    assert entry.after["enabled"] is True and entry.reason == "turn it on"


def test_aws_instances_show_their_latest_minute_cpu(login, ops_user, group, monkeypatch):
    from django.utils import timezone

    from fleet import backends
    from monitoring.rollups import write_minute_value

    described = {
        "DesiredCapacity": 2,
        "MinSize": 1,
        "MaxSize": 4,
        "Instances": [
            {"InstanceId": "i-0abc", "LifecycleState": "InService", "HealthStatus": "Healthy"},
            {"InstanceId": "i-0def", "LifecycleState": "Pending", "HealthStatus": "Healthy"},
        ],
    }
    monkeypatch.setattr(backends.aws, "describe_autoscaling_group", lambda client, name: described)
    monkeypatch.setattr(backends.aws, "autoscaling_client", lambda: None)
    monkeypatch.setattr(backends.aws, "describe_scaling_policies", lambda client, name: [])
    monkeypatch.setattr(backends.aws, "describe_scaling_activities", lambda client, name, max_records: [])
    now = timezone.now()
    write_minute_value("cpu_percent", "instance:i-0abc", now - timezone.timedelta(minutes=2), 30.0)
    write_minute_value("cpu_percent", "instance:i-0abc", now, 87.5)
    make_aws_group("upload-servers")
    content = login(ops_user).get(reverse("fleet:groups")).content.decode()
    assert "87.5 %" in content and "30.0 %" not in content
    assert "InService · Healthy" in content and "Pending · Healthy" in content
    assert ScalingGroup.objects.count() >= 2


@pytest.mark.parametrize("field", ["from_capacity", "to_capacity"])
def test_a_capacity_beyond_its_column_is_refused_not_a_crash(login, ops_user, group, field):
    data = scale_post(3)
    data[field] = str(10**30)
    response = login(ops_user).post(reverse("fleet:scale", args=[group.name]), data)
    assert response.status_code == 400
    assert "2147483647" in response.content.decode()
    assert not ScalingAction.objects.exists()


def test_a_policy_step_beyond_its_column_is_a_field_error(login, ops_user, group):
    response = login(ops_user).post(
        reverse("fleet:policy", args=[group.name]), policy_post(group, max_step=2**40), follow=True
    )
    assert "At most 2147483647" in response.content.decode()
    assert not ScalingPolicy.objects.filter(max_step=2**40).exists()
