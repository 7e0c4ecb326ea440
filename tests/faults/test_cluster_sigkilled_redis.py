"""The real django-q2 cluster (`manage.py qcluster`) on a real Redis broker, killed (SIGKILL)
while it carries out a scaling action. django-q2 on Redis never acknowledges: the message left
Redis when the worker took it, so no broker retry will ever come. The action's row is the
record: the sweeper settles it by what the group shows and queues it again, and a second
cluster applies it exactly once. PostgreSQL only: the cluster must see the test's rows."""

import os
import shutil
import signal
import subprocess
import uuid
from datetime import timedelta

import boto3
import pytest
import redis
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import Schedule

from fleet import scaling
from fleet.models import ScalingAction
from tests.factories import AMI_ID, REGION, make_aws_group, postgres_only, start_worker_process, wait_until

pytestmark = [
    postgres_only,
    pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed"),
]
ASG = "upload-servers"


def start_cluster(redis_url: str, aws_endpoint: str) -> subprocess.Popen:
    """`manage.py qcluster` with one worker, on Redis, in a process group of its own."""
    return start_worker_process(
        "from django.core.management import call_command; call_command('qcluster')",
        REDIS_URL=redis_url,
        Q_SYNC="false",
        Q_WORKERS="1",
        AWS_ENDPOINT_URL=aws_endpoint,
        AWS_READ_TIMEOUT_SECONDS="300",
        AWS_MAX_ATTEMPTS="1",
    )


def stop(cluster: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    if cluster.poll() is None:
        os.killpg(cluster.pid, sig)
    cluster.wait(timeout=30)


def make_group_in_moto(endpoint: str, desired: int) -> boto3.client:
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=endpoint)
    ec2.create_launch_template(
        LaunchTemplateName=f"{ASG}-lt", LaunchTemplateData={"ImageId": AMI_ID, "InstanceType": "t3.micro"}
    )
    autoscaling = boto3.client("autoscaling", region_name=REGION, endpoint_url=endpoint)
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=ASG,
        LaunchTemplate={"LaunchTemplateName": f"{ASG}-lt", "Version": "$Latest"},
        MinSize=0,
        MaxSize=10,
        DesiredCapacity=desired,
        AvailabilityZones=[f"{REGION}a"],
    )
    return autoscaling


def desired_of(autoscaling) -> int:
    return autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[ASG])["AutoScalingGroups"][0][
        "DesiredCapacity"
    ]


def status_of(action: ScalingAction) -> str:
    action.refresh_from_db()
    return action.status


@pytest.mark.django_db(transaction=True)
def test_a_cluster_killed_mid_action_on_redis_neither_loses_the_action_nor_scales_twice(
    redis_broker, silent_aws, settings, request, ops_user
):
    Schedule.objects.all().delete()  # only the action under test runs in the cluster
    silent_endpoint = settings.AWS_ENDPOINT_URL
    moto_endpoint = request.getfixturevalue("moto_server_url")  # AWS as it answers once back
    autoscaling = make_group_in_moto(moto_endpoint, desired=2)
    group = make_aws_group(ASG, cooldown_seconds=900)
    action, _ = scaling.request_scaling(group, ops_user, 2, 3, "TheirStory backlog", idempotency_key=uuid.uuid4())

    cluster = start_cluster(redis_broker.url, silent_endpoint)
    try:
        assert scaling.enqueue(action)
        assert wait_until(lambda: len(silent_aws) == 1 or cluster.poll() is not None, 90), "AWS was never called"
        assert cluster.poll() is None, cluster.communicate()[1][-2000:]
        stop(cluster)  # SIGKILL of the whole cluster with the worker's AWS call in flight
    finally:
        stop(cluster)

    assert status_of(action) == ScalingAction.Status.RUNNING
    assert get_broker().queue_size() == 0, "the message is gone from Redis: no broker retry will come"
    assert desired_of(autoscaling) == 2

    later = timezone.now() + timedelta(seconds=scaling.ABANDONED_ACTION_SECONDS + 1)
    assert scaling.recover_abandoned(now=later) == 1  # AWS still says 2: the change never landed
    assert status_of(action) == ScalingAction.Status.REQUESTED
    assert scaling.enqueue_waiting(now=later) == 1
    assert scaling.enqueue_waiting(now=later) == 1, "a racing second sweep queues it twice: harmless"
    assert get_broker().queue_size() == 2

    second = start_cluster(redis_broker.url, moto_endpoint)
    try:
        assert wait_until(lambda: get_broker().queue_size() == 0 and status_of(action) != "running", 120), (
            second.poll() is not None and second.communicate()[1][-2000:]
        )
        assert wait_until(lambda: status_of(action) == ScalingAction.Status.SUCCEEDED, 60), action.message
    finally:
        stop(second)

    action.refresh_from_db()
    assert action.attempts == 2, "claimed once by the killed worker, once by the retry, never by the duplicate"
    assert desired_of(autoscaling) == 3
    assert len(silent_aws) == 1, "the killed worker's endpoint was never called again"
    assert scaling.recover_abandoned(now=later) == 0 and scaling.enqueue_waiting(now=later) == 0
    assert redis.Redis.from_url(redis_broker.url).ping()
