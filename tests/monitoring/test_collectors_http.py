"""The collectors over real HTTP: boto3 talks to moto's server on 127.0.0.1 through
settings.AWS_ENDPOINT_URL, as it would to AWS (signing, timeouts, retries, parsing)."""

import socket
from datetime import timedelta

import boto3
import pytest
from django.utils import timezone

from monitoring import collectors, metrics
from monitoring.models import MetricSource, Rollup
from tests.factories import AMI_ID, REGION

Kind = MetricSource.Kind

pytestmark = pytest.mark.django_db


def client(service: str, endpoint_url: str):
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint_url)


def test_it_collects_group_cpu_and_queue_depth_over_http(moto_server_url):
    now = timezone.now().replace(second=30, microsecond=0)
    client("ec2", moto_server_url).create_launch_template(
        LaunchTemplateName="upload-servers", LaunchTemplateData={"ImageId": AMI_ID, "InstanceType": "t3.micro"}
    )
    autoscaling = client("autoscaling", moto_server_url)
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="upload-servers",
        MinSize=0,
        MaxSize=2,
        DesiredCapacity=1,
        LaunchTemplate={"LaunchTemplateName": "upload-servers", "Version": "$Latest"},
        AvailabilityZones=[f"{REGION}a"],
    )
    (group,) = autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"]
    instance_id = group["Instances"][0]["InstanceId"]
    client("cloudwatch", moto_server_url).put_metric_data(
        Namespace="AWS/EC2",
        MetricData=[
            {
                "MetricName": "CPUUtilization",
                "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
                "Timestamp": now - timedelta(minutes=2),
                "Value": 63.0,
                "Unit": "Percent",
            }
        ],
    )
    sqs = client("sqs", moto_server_url)
    queue_url = sqs.create_queue(QueueName="transcode-jobs")["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody="upload 1")
    MetricSource.objects.create(kind=Kind.AUTOSCALING_CPU, name="upload-servers")
    MetricSource.objects.create(kind=Kind.SQS_QUEUE, name="transcode-jobs")

    assert collectors.collect_all(now) == {"ok": 2, "failed": 0}

    cpu_minute = metrics.bucket_start(now - timedelta(minutes=2), metrics.MINUTE_SECONDS)
    values = {(row.metric, row.subject, row.bucket_start): row.value for row in Rollup.objects.all()}
    assert values == {
        (metrics.CPU_PERCENT, metrics.instance_subject(instance_id), cpu_minute): 63.0,
        (metrics.CPU_PERCENT, "asg:upload-servers", cpu_minute): 63.0,
        (metrics.QUEUE_VISIBLE, "queue:transcode-jobs", metrics.bucket_start(now, 60)): 1,
        (metrics.QUEUE_IN_FLIGHT, "queue:transcode-jobs", metrics.bucket_start(now, 60)): 0,
    }


def closed_local_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_endpoint_nobody_listens_on_is_recorded_as_unreachable(fake_aws_environment, settings):
    endpoint_url = f"http://127.0.0.1:{closed_local_port()}"
    settings.AWS_ENDPOINT_URL = endpoint_url
    settings.AWS_MAX_ATTEMPTS = 1  # no retry: standard retries back off for up to seconds
    source = MetricSource.objects.create(kind=Kind.AUTOSCALING_CPU, name="upload-servers")

    assert collectors.collect_all() == {"ok": 0, "failed": 1}

    source.refresh_from_db()
    assert source.last_error == (
        f"could not reach Auto Scaling at {endpoint_url}/ — check the network, AWS_REGION and AWS_ENDPOINT_URL"
    )
