"""AWS groups scale on AWS's own target tracking, driven from the fleet page (moto), and a policy
made outside the dashboard is shown and never fought."""

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from django.urls import reverse
from django.utils import timezone
from moto import mock_aws

from core.models import AuditEntry
from fleet import aws_policy
from fleet import policy as policy_module
from fleet.models import PolicyDecision, ScalingAction, ScalingAudit, ScalingPolicy
from monitoring import aws, metrics
from monitoring.rollups import write_minute_value
from tests.factories import AMI_ID, REGION, make_aws_group

pytestmark = pytest.mark.django_db
ASG = "upload-servers"


@pytest.fixture
def mocked_aws(fake_aws_environment, settings):
    settings.AWS_MAX_ATTEMPTS = 1
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        ec2.create_launch_template(
            LaunchTemplateName=f"{ASG}-lt", LaunchTemplateData={"ImageId": AMI_ID, "InstanceType": "t3.micro"}
        )
        autoscaling().create_auto_scaling_group(
            AutoScalingGroupName=ASG,
            LaunchTemplate={"LaunchTemplateName": f"{ASG}-lt", "Version": "$Latest"},
            MinSize=0,
            MaxSize=10,
            DesiredCapacity=2,
            AvailabilityZones=[f"{REGION}a"],
        )
        yield


def autoscaling():
    return boto3.client("autoscaling", region_name=REGION)


def policies_in_aws() -> dict[str, dict]:
    described = autoscaling().describe_policies(AutoScalingGroupName=ASG)["ScalingPolicies"]
    return {policy["PolicyName"]: policy for policy in described}


def desired_in_aws() -> int:
    return autoscaling().describe_auto_scaling_groups(AutoScalingGroupNames=[ASG])["AutoScalingGroups"][0][
        "DesiredCapacity"
    ]


def add_foreign_policy(name: str = "terraform-cpu-50") -> None:
    autoscaling().put_scaling_policy(
        AutoScalingGroupName=ASG,
        PolicyName=name,
        PolicyType="TargetTrackingScaling",
        TargetTrackingConfiguration={
            "PredefinedMetricSpecification": {"PredefinedMetricType": "ASGAverageCPUUtilization"},
            "TargetValue": 50.0,
        },
    )


def aws_policy_post(group, **overrides) -> dict:
    values = {"enabled": "on", "target_cpu_percent": 60, "warmup_seconds": 300, "reason": "turn on AWS scaling"}
    values.update(overrides)
    return {f"policy-{group.pk}-{name}": value for name, value in values.items() if value is not None}


def post_policy(client, group, **overrides):
    return client.post(reverse("fleet:policy", args=[group.name]), aws_policy_post(group, **overrides), follow=True)


def test_turning_the_policy_on_creates_aws_target_tracking_with_the_form_values_and_audits_it(
    mocked_aws, login, ops_user
):
    group = make_aws_group(ASG)
    response = post_policy(login(ops_user), group, target_cpu_percent=65, warmup_seconds=240)

    assert "Policy of aws-uploads saved: on (AWS target tracking)." in response.content.decode()
    ours = policies_in_aws()[aws_policy.OUR_POLICY_NAME]
    assert ours["PolicyType"] == "TargetTrackingScaling"
    assert ours["EstimatedInstanceWarmup"] == 240
    config = ours["TargetTrackingConfiguration"]
    assert config["TargetValue"] == 65.0 and config["DisableScaleIn"] is False
    assert config["PredefinedMetricSpecification"]["PredefinedMetricType"] == "ASGAverageCPUUtilization"
    entry = AuditEntry.objects.get(action=ScalingAudit.SCALING_POLICY_CHANGED)
    assert entry.actor == ops_user and entry.reason == "turn on AWS scaling"
    assert entry.before["in_aws"] == "absent"
    assert entry.after["in_aws"] == "target tracking: ASGAverageCPUUtilization at 65%, warm-up 240 s"


def test_changing_the_target_updates_the_one_policy_and_turning_it_off_deletes_it(mocked_aws, login, ops_user):
    group = make_aws_group(ASG)
    client = login(ops_user)
    post_policy(client, group)
    post_policy(client, group, target_cpu_percent=70, never_scale_in="on")
    assert list(policies_in_aws()) == [aws_policy.OUR_POLICY_NAME]
    config = policies_in_aws()[aws_policy.OUR_POLICY_NAME]["TargetTrackingConfiguration"]
    assert config["TargetValue"] == 70.0 and config["DisableScaleIn"] is True

    response = post_policy(client, group, enabled=None, reason="back to hand scaling")
    assert "saved: off (AWS target tracking)" in response.content.decode()
    assert policies_in_aws() == {}
    assert not ScalingPolicy.objects.get(group=group).enabled
    last = AuditEntry.objects.filter(action=ScalingAudit.SCALING_POLICY_CHANGED).order_by("-id").first()
    assert last.after["enabled"] is False and last.after["in_aws"] == "absent"
    assert last.reason == "back to hand scaling"


def test_saving_again_restores_a_policy_deleted_in_aws_behind_the_dashboards_back(mocked_aws, login, ops_user):
    group = make_aws_group(ASG)
    client = login(ops_user)
    post_policy(client, group)
    autoscaling().delete_policy(AutoScalingGroupName=ASG, PolicyName=aws_policy.OUR_POLICY_NAME)

    page = client.get(reverse("fleet:groups")).content.decode()
    assert "no policy of the dashboard" in page and "save the policy to apply it" in page

    post_policy(client, group, reason="put it back")
    assert aws_policy.OUR_POLICY_NAME in policies_in_aws()
    last = AuditEntry.objects.filter(action=ScalingAudit.SCALING_POLICY_CHANGED).order_by("-id").first()
    assert last.before == {"in_aws": "absent"} and last.reason == "put it back"


def test_a_policy_made_outside_the_dashboard_is_shown_and_the_dashboard_refuses_to_add_its_own(
    mocked_aws, login, ops_user
):
    add_foreign_policy()
    group = make_aws_group(ASG)
    client = login(ops_user)

    response = post_policy(client, group)

    content = response.content.decode()
    assert "already has a scaling policy made outside the dashboard: terraform-cpu-50" in content
    assert "Nothing was changed." in content
    assert list(policies_in_aws()) == ["terraform-cpu-50"]
    assert policies_in_aws()["terraform-cpu-50"]["TargetTrackingConfiguration"]["TargetValue"] == 50.0
    assert not ScalingPolicy.objects.filter(group=group, enabled=True).exists()
    assert not AuditEntry.objects.filter(action=ScalingAudit.SCALING_POLICY_CHANGED).exists()
    page = client.get(reverse("fleet:groups")).content.decode()
    assert "Made outside the dashboard, and left alone" in page and "terraform-cpu-50" in page


def test_turning_off_next_to_a_foreign_policy_deletes_only_ours(mocked_aws, login, ops_user):
    group = make_aws_group(ASG)
    client = login(ops_user)
    post_policy(client, group)
    add_foreign_policy("console-step-policy")

    post_policy(client, group, enabled=None, reason="someone else scales it now")

    assert list(policies_in_aws()) == ["console-step-policy"]


def test_the_home_made_controller_never_acts_on_an_aws_group_even_with_high_cpu(mocked_aws):
    add_foreign_policy()
    group = make_aws_group(ASG, cooldown_seconds=0)
    # Turned on before AWS's engine drove AWS groups: the row says on, AWS has only the foreign policy.
    ScalingPolicy.objects.create(group=group, enabled=True, target_cpu_percent=60)
    now = timezone.now()
    for minute in range(10):
        write_minute_value("cpu_percent", metrics.autoscaling_group_subject(ASG), now - timedelta(minutes=minute), 99)

    assert policy_module.evaluate_all(now) == {}

    assert not PolicyDecision.objects.exists() and not ScalingAction.objects.exists()
    assert desired_in_aws() == 2
    with pytest.raises(ValueError, match="AWS's own target tracking scales it"):
        policy_module.evaluate(group.policy, now)


def test_the_fleet_page_shows_our_policy_in_aws(mocked_aws, login, ops_user, engineer):
    group = make_aws_group(ASG)
    post_policy(login(ops_user), group, target_cpu_percent=55, warmup_seconds=120)
    page = login(engineer).get(reverse("fleet:groups")).content.decode()
    assert "<strong>upload-ops-target-cpu</strong>, 55% average CPU, warm-up 120 s" in page
    assert "save the policy to apply it" not in page


def test_the_fleet_page_lists_aws_scaling_activities(mocked_aws, login, engineer, monkeypatch):
    activities = [
        {
            "ActivityId": "a-1",
            "AutoScalingGroupName": ASG,
            "Description": "Launching a new EC2 instance: i-0123456789abcdef0",
            "Cause": "At 2026-12-01T10:02:00Z a monitor alarm TargetTracking-upload-servers-AlarmHigh in state "
            "ALARM triggered policy upload-ops-target-cpu changing the desired capacity from 2 to 3.",
            "StartTime": datetime(2026, 12, 1, 10, 2, 5, tzinfo=UTC),
            "StatusCode": "Successful",
        }
    ]
    # moto's describe_scaling_activities returns no activities at all, so AWS's answer is given here.
    monkeypatch.setattr(aws, "describe_scaling_activities", lambda client, name, max_records: activities)
    make_aws_group(ASG)
    page = login(engineer).get(reverse("fleet:groups")).content.decode()
    assert "2026-12-01 10:02:05 UTC · Launching a new EC2 instance: i-0123456789abcdef0" in page
    assert "triggered policy upload-ops-target-cpu changing the desired capacity from 2 to 3" in page


def test_aws_scaling_activities_after_a_scaling_come_from_aws(mocked_aws, ops_user):
    autoscaling().set_desired_capacity(AutoScalingGroupName=ASG, DesiredCapacity=3)
    activities = aws_policy.read_state(make_aws_group(ASG)).activities
    if not activities:
        pytest.skip("moto lacks DescribeScalingActivities: it answers an empty list even after a scaling")
    assert any("3" in activity.get("Cause", "") for activity in activities)


def test_an_aws_failure_saves_nothing_and_says_why(mocked_aws, login, ops_user, monkeypatch):
    def denied(*args, **kwargs):
        raise aws.AwsError("AccessDenied: not allowed to call autoscaling:PutScalingPolicy — check the IAM role")

    monkeypatch.setattr(aws, "put_target_tracking_policy", denied)
    group = make_aws_group(ASG)
    content = post_policy(login(ops_user), group).content.decode()
    assert "Policy of aws-uploads not saved: AccessDenied: not allowed to call autoscaling:PutScalingPolicy" in content
    assert not ScalingPolicy.objects.exists() and not AuditEntry.objects.exists()
    assert policies_in_aws() == {}


@pytest.mark.parametrize(
    "field,value,words",
    [
        ("target_cpu_percent", 0, "greater than or equal to 1"),
        ("target_cpu_percent", "lots", "Enter a number"),
        ("warmup_seconds", 99999, "less than or equal to 3600"),
        ("warmup_seconds", -5, "greater than or equal to 0"),
        ("reason", "", "Say why"),
    ],
)
def test_bad_input_is_a_form_error_and_aws_is_not_called(mocked_aws, login, ops_user, field, value, words):
    group = make_aws_group(ASG)
    content = post_policy(login(ops_user), group, **{field: value}).content.decode()
    assert "Policy not saved:" in content and words in content
    assert policies_in_aws() == {} and not AuditEntry.objects.exists()


@pytest.mark.parametrize("role", ["engineer", "manager_a"])
def test_only_ops_may_turn_aws_scaling_on(mocked_aws, login, engineer, manager_a, role):
    group = make_aws_group(ASG)
    user = {"engineer": engineer, "manager_a": manager_a}[role]
    response = login(user).post(reverse("fleet:policy", args=[group.name]), aws_policy_post(group))
    assert response.status_code == 403
    assert policies_in_aws() == {} and not AuditEntry.objects.exists()
