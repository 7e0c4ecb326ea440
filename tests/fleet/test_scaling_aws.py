"""Scaling an AWS Auto Scaling group through moto, and every AWS failure in words.

moto cannot produce every failure (above the group's AWS max, an activity in progress, access
denied, throttling, a timeout): those are injected on the client monitoring.aws builds."""

import boto3
import pytest
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError
from botocore.stub import Stubber
from moto import mock_aws

from fleet.backends import AwsBackend
from fleet.models import ScalingAction
from monitoring import aws
from tests.factories import AMI_ID, REGION, make_aws_group, scale

Status = ScalingAction.Status
pytestmark = pytest.mark.django_db


@pytest.fixture
def mocked_aws(fake_aws_environment, settings):
    settings.AWS_MAX_ATTEMPTS = 1
    with mock_aws():
        yield


def make_asg(name: str = "upload-servers", desired: int = 2, max_size: int = 10) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    ec2.create_launch_template(
        LaunchTemplateName=f"{name}-lt", LaunchTemplateData={"ImageId": AMI_ID, "InstanceType": "t3.micro"}
    )
    boto3.client("autoscaling", region_name=REGION).create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": f"{name}-lt", "Version": "$Latest"},
        MinSize=0,
        MaxSize=max_size,
        DesiredCapacity=desired,
        AvailabilityZones=[f"{REGION}a"],
    )


def aws_desired(name: str = "upload-servers") -> int:
    groups = boto3.client("autoscaling", region_name=REGION).describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
        "AutoScalingGroups"
    ]
    return groups[0]["DesiredCapacity"]


def test_it_describes_desired_bounds_and_instances(mocked_aws):
    make_asg(desired=3)
    state = AwsBackend().describe(make_aws_group())
    assert (state.desired, state.min_size, state.max_size, state.in_service, state.pending) == (3, 0, 10, 3, 0)
    assert len(state.members) == 3 and all(m.name.startswith("i-") for m in state.members)


def test_it_sets_the_desired_capacity_within_bounds(mocked_aws, ops_user):
    make_asg(desired=2)
    action = scale(make_aws_group(), ops_user, 4)
    assert (action.status, action.from_capacity, action.to_capacity) == (Status.SUCCEEDED, 2, 4)
    assert aws_desired() == 4


def test_it_refuses_beyond_our_max_before_calling_aws(mocked_aws, ops_user, monkeypatch):
    make_asg(desired=2)
    group = make_aws_group(max_capacity=5)
    action = scale(group, ops_user, 6, from_capacity=2)
    assert action.status == Status.REFUSED
    assert "6 is above the group's maximum of 5" in action.message
    assert aws_desired() == 2


def test_the_cooldown_holds_between_two_aws_scalings(mocked_aws, ops_user):
    make_asg(desired=2)
    group = make_aws_group(cooldown_seconds=600)
    assert scale(group, ops_user, 3).status == Status.SUCCEEDED
    second = scale(group, ops_user, 4)
    assert second.status == Status.REFUSED and "600 s cooldown" in second.message
    assert aws_desired() == 3


def test_a_double_submit_scales_aws_once(mocked_aws, ops_user):
    import uuid

    make_asg(desired=2)
    group = make_aws_group(cooldown_seconds=0)
    key = uuid.uuid4()
    scale(group, ops_user, 3, from_capacity=2, key=key)
    scale(group, ops_user, 3, from_capacity=2, key=key)
    assert ScalingAction.objects.count() == 1 and aws_desired() == 3


def test_an_unknown_group_fails_with_its_name(mocked_aws, ops_user):
    action = scale(make_aws_group("no-such-group"), ops_user, 3, from_capacity=2)
    assert action.status == Status.FAILED
    assert "Auto Scaling group no-such-group not found in region us-east-1" in action.message


# ---- Failures moto cannot produce: injected on the client from monitoring.aws --------------


@pytest.fixture
def stubbed_client(mocked_aws, monkeypatch):
    """The real describe from moto, then whatever the test queues for set_desired_capacity."""
    make_asg(desired=2)
    client = aws.autoscaling_client()
    described = client.describe_auto_scaling_groups(AutoScalingGroupNames=["upload-servers"])
    stubber = Stubber(client)
    stubber.add_response("describe_auto_scaling_groups", {"AutoScalingGroups": described["AutoScalingGroups"]})
    monkeypatch.setattr(aws, "autoscaling_client", lambda: client)
    with stubber:
        yield client, stubber


@pytest.mark.parametrize(
    "code,message,words",
    [
        (
            "ValidationError",
            "New SetDesiredCapacity value 12 is above max value 10 for the AutoScalingGroup.",
            "AWS refused 12 for upload-servers: New SetDesiredCapacity value 12 is above max value 10",
        ),
        (
            "ScalingActivityInProgress",
            "Scaling activity in progress",
            "AWS is still carrying out an earlier scaling activity of upload-servers",
        ),
        (
            "AccessDenied",
            "User is not authorized",
            "AccessDenied: not allowed to call autoscaling:SetDesiredCapacity — check the worker's IAM role",
        ),
        ("Throttling", "Rate exceeded", "Throttling: AWS throttled autoscaling:SetDesiredCapacity even after retries"),
    ],
)
def test_each_aws_error_is_recorded_in_words(stubbed_client, ops_user, code, message, words):
    client, stubber = stubbed_client
    stubber.add_client_error(
        "set_desired_capacity", service_error_code=code, service_message=message, http_status_code=400
    )
    group = make_aws_group(max_capacity=20)
    action = scale(group, ops_user, 12, from_capacity=2)
    assert action.status == Status.FAILED
    assert words in action.message
    group.refresh_from_db()
    assert group.last_scaled_at is None, "a failed call starts no cooldown"


@pytest.mark.parametrize(
    "error,words,outcome",
    [
        (
            ReadTimeoutError(endpoint_url="https://autoscaling.us-east-1.amazonaws.com"),
            "timed out after 10 s talking to Auto Scaling",
            "AWS may have applied it",
        ),
        (
            ConnectTimeoutError(endpoint_url="https://autoscaling.us-east-1.amazonaws.com"),
            "could not connect to Auto Scaling within 3 s",
            "Nothing was changed",
        ),
    ],
)
def test_a_timeout_is_recorded_in_words(mocked_aws, monkeypatch, ops_user, error, words, outcome):
    make_asg(desired=2)
    client = aws.autoscaling_client()

    def time_out(**kwargs):
        raise error

    client.meta.events.register_first("before-send.autoscaling.SetDesiredCapacity", time_out)
    monkeypatch.setattr(aws, "autoscaling_client", lambda: client)
    action = scale(make_aws_group(), ops_user, 3, from_capacity=2)
    assert action.status == Status.FAILED
    assert words in action.message and outcome in action.message
