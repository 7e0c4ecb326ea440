"""Scaling over real HTTP: boto3 talks to moto's server through settings.AWS_ENDPOINT_URL."""

import boto3
import pytest

from fleet.models import ScalingAction
from tests.factories import AMI_ID, REGION, make_aws_group, scale

pytestmark = pytest.mark.django_db


def test_it_scales_an_auto_scaling_group_over_http_and_refuses_beyond_max(moto_server_url, ops_user):
    def client(service):
        return boto3.client(service, region_name=REGION, endpoint_url=moto_server_url)

    client("ec2").create_launch_template(
        LaunchTemplateName="upload-lt", LaunchTemplateData={"ImageId": AMI_ID, "InstanceType": "t3.micro"}
    )
    client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName="upload-servers",
        MinSize=0,
        MaxSize=10,
        DesiredCapacity=1,
        LaunchTemplate={"LaunchTemplateName": "upload-lt", "Version": "$Latest"},
        AvailabilityZones=[f"{REGION}a"],
    )
    group = make_aws_group(max_capacity=3, cooldown_seconds=0)

    assert scale(group, ops_user, 3).status == ScalingAction.Status.SUCCEEDED
    refused = scale(group, ops_user, 4)
    assert refused.status == ScalingAction.Status.REFUSED and "above the group's maximum of 3" in refused.message

    (described,) = client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
    assert described["DesiredCapacity"] == 3
