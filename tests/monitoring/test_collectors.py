"""The minute collectors against moto: CloudWatch CPU of Auto Scaling groups, SQS queue depth,
and how failures are recorded on each metric source. Nothing leaves the process."""

from datetime import datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError
from botocore.stub import Stubber
from django.utils import timezone
from moto import mock_aws

from monitoring import aws, collectors, metrics, tasks
from monitoring.models import MetricSource, Rollup
from monitoring.rollups import write_minute_value
from tests.factories import AMI_ID, REGION, make_source

Kind = MetricSource.Kind

pytestmark = pytest.mark.django_db


@pytest.fixture
def mocked_aws(fake_aws_environment):
    with mock_aws():
        yield


@pytest.fixture
def now() -> datetime:
    # Half past a minute: datapoints put "n minutes ago" fall in whole, known minutes.
    return timezone.now().replace(second=30, microsecond=0)


def minute(moment: datetime) -> datetime:
    return metrics.bucket_start(moment, metrics.MINUTE_SECONDS)


def make_group(name: str, instance_count: int) -> list[str]:
    """An Auto Scaling group in moto with `instance_count` running instances; their ids."""
    ec2 = boto3.client("ec2", region_name=REGION)
    template_name = f"{name}-template"
    ec2.create_launch_template(
        LaunchTemplateName=template_name, LaunchTemplateData={"ImageId": AMI_ID, "InstanceType": "t3.micro"}
    )
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": template_name, "Version": "$Latest"},
        MinSize=0,
        MaxSize=10,
        DesiredCapacity=instance_count,
        AvailabilityZones=[f"{REGION}a"],
    )
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    return sorted(instance["InstanceId"] for instance in group["Instances"])


def put_cpu(instance_id: str, moment: datetime, cpu_percent: float) -> None:
    boto3.client("cloudwatch", region_name=REGION).put_metric_data(
        Namespace="AWS/EC2",
        MetricData=[
            {
                "MetricName": "CPUUtilization",
                "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
                "Timestamp": moment,
                "Value": cpu_percent,
                "Unit": "Percent",
            }
        ],
    )


def make_queue(name: str, message_count: int = 0, in_flight_count: int = 0) -> str:
    """A queue holding `message_count` messages, `in_flight_count` of them received (invisible)."""
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    for number in range(message_count):
        sqs.send_message(QueueUrl=queue_url, MessageBody=f"upload {number}")
    received = 0
    while received < in_flight_count:
        batch = min(10, in_flight_count - received)
        received += len(
            sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=batch, VisibilityTimeout=600).get(
                "Messages", []
            )
        )
    return queue_url


def series(metric: str, subject: str) -> dict[datetime, float]:
    rows = Rollup.objects.filter(metric=metric, subject=subject, resolution_seconds=metrics.MINUTE_SECONDS)
    return {row.bucket_start: row.value for row in rows}


def refreshed(source: MetricSource) -> MetricSource:
    source.refresh_from_db()
    return source


# ---- CloudWatch CPU of an Auto Scaling group -----------------------------------------------


def test_it_stores_each_instance_cpu_at_the_minute_cloudwatch_reported_it(mocked_aws, now):
    first, second = make_group("upload-servers", 2)
    put_cpu(first, now - timedelta(minutes=3), 40.0)
    put_cpu(first, now - timedelta(minutes=2), 55.5)
    put_cpu(second, now - timedelta(minutes=2), 20.0)
    source = make_source(Kind.AUTOSCALING_CPU, "upload-servers")

    assert collectors.collect_all(now) == {"ok": 1, "failed": 0}

    assert series(metrics.CPU_PERCENT, metrics.instance_subject(first)) == {
        minute(now - timedelta(minutes=3)): 40.0,
        minute(now - timedelta(minutes=2)): 55.5,
    }
    assert series(metrics.CPU_PERCENT, metrics.instance_subject(second)) == {minute(now - timedelta(minutes=2)): 20.0}
    source = refreshed(source)
    assert (source.last_attempt_at, source.last_success_at, source.last_error) == (now, now, "")


def test_it_stores_the_group_average_of_the_instances_that_reported_each_minute(mocked_aws, now):
    first, second = make_group("upload-servers", 2)
    put_cpu(first, now - timedelta(minutes=3), 40.0)
    put_cpu(first, now - timedelta(minutes=2), 60.0)
    put_cpu(second, now - timedelta(minutes=2), 20.0)
    make_source(Kind.AUTOSCALING_CPU, "upload-servers")

    collectors.collect_all(now)

    assert series(metrics.CPU_PERCENT, "asg:upload-servers") == {
        minute(now - timedelta(minutes=3)): 40.0,
        minute(now - timedelta(minutes=2)): 40.0,
    }


def test_a_datapoint_cloudwatch_publishes_late_still_lands_on_a_later_run(mocked_aws, now):
    (instance_id,) = make_group("upload-servers", 1)
    make_source(Kind.AUTOSCALING_CPU, "upload-servers")
    collectors.collect_all(now)
    put_cpu(instance_id, now - timedelta(minutes=4), 75.0)

    collectors.collect_all(now + timedelta(minutes=1))

    assert series(metrics.CPU_PERCENT, metrics.instance_subject(instance_id)) == {
        minute(now - timedelta(minutes=4)): 75.0
    }


def test_datapoints_older_than_the_lookback_window_are_not_read(mocked_aws, now):
    (instance_id,) = make_group("upload-servers", 1)
    put_cpu(instance_id, now - timedelta(minutes=collectors.CPU_LOOKBACK_MINUTES + 2), 99.0)
    make_source(Kind.AUTOSCALING_CPU, "upload-servers")

    collectors.collect_all(now)

    assert series(metrics.CPU_PERCENT, metrics.instance_subject(instance_id)) == {}


def test_a_group_with_no_instances_stores_nothing_and_is_not_a_failure(mocked_aws, now):
    make_group("scaled-to-zero", 0)
    source = make_source(Kind.AUTOSCALING_CPU, "scaled-to-zero")

    assert collectors.collect_all(now) == {"ok": 1, "failed": 0}

    assert not Rollup.objects.exists()
    assert refreshed(source).last_success_at == now


def test_an_unknown_group_records_a_clear_error_and_keeps_earlier_data(mocked_aws, now):
    source = make_source(Kind.AUTOSCALING_CPU, "gone-group")
    earlier = now - timedelta(hours=1)
    write_minute_value(metrics.CPU_PERCENT, "asg:gone-group", earlier, 12.0)

    assert collectors.collect_all(now) == {"ok": 0, "failed": 1}

    source = refreshed(source)
    assert source.last_error == "Auto Scaling group gone-group not found in region us-east-1"
    assert (source.last_attempt_at, source.last_error_at, source.last_success_at) == (now, now, None)
    assert source.failing
    assert series(metrics.CPU_PERCENT, "asg:gone-group") == {minute(earlier): 12.0}


# ---- SQS queue depth ------------------------------------------------------------------------


def test_it_stores_visible_and_in_flight_message_counts_of_a_queue(mocked_aws, now):
    make_queue("transcode-jobs", message_count=5, in_flight_count=2)
    source = make_source(Kind.SQS_QUEUE, "transcode-jobs")

    assert collectors.collect_all(now) == {"ok": 1, "failed": 0}

    subject = metrics.queue_subject("transcode-jobs")
    assert series(metrics.QUEUE_VISIBLE, subject) == {minute(now): 3}
    assert series(metrics.QUEUE_IN_FLIGHT, subject) == {minute(now): 2}
    assert refreshed(source).last_success_at == now


def test_an_unknown_queue_records_a_clear_error_and_keeps_earlier_data(mocked_aws, now):
    source = make_source(Kind.SQS_QUEUE, "deleted-queue")
    earlier = now - timedelta(minutes=30)
    write_minute_value(metrics.QUEUE_VISIBLE, metrics.queue_subject("deleted-queue"), earlier, 7)

    collectors.collect_all(now)

    assert refreshed(source).last_error == "SQS queue deleted-queue not found in region us-east-1"
    assert series(metrics.QUEUE_VISIBLE, metrics.queue_subject("deleted-queue")) == {minute(earlier): 7}


# ---- Failures are recorded, and the other sources are still collected -----------------------


@pytest.mark.parametrize(
    ("error_code", "status", "expected_message"),
    [
        (
            "AccessDenied",
            403,
            "AccessDenied: not allowed to call cloudwatch:GetMetricData — check the worker's IAM role",
        ),
        (
            "Throttling",
            400,
            "Throttling: AWS throttled cloudwatch:GetMetricData even after retries — the next run tries again",
        ),
    ],
)
def test_an_aws_error_is_recorded_with_its_meaning_and_other_sources_still_collect(
    mocked_aws, monkeypatch, now, error_code, status, expected_message
):
    make_group("upload-servers", 1)
    make_queue("transcode-jobs", message_count=1)
    cpu_source = make_source(Kind.AUTOSCALING_CPU, "upload-servers")
    queue_source = make_source(Kind.SQS_QUEUE, "transcode-jobs")
    cloudwatch = aws.cloudwatch_client()
    stubber = Stubber(cloudwatch)
    stubber.add_client_error(
        "get_metric_data",
        service_error_code=error_code,
        http_status_code=status,
        service_message="User: arn:aws:sts::123456789012:assumed-role/worker is not authorized",
    )
    stubber.activate()
    monkeypatch.setattr(aws, "cloudwatch_client", lambda: cloudwatch)

    assert collectors.collect_all(now) == {"ok": 1, "failed": 1}

    assert refreshed(cpu_source).last_error == expected_message
    assert refreshed(queue_source).last_success_at == now
    assert series(metrics.QUEUE_VISIBLE, metrics.queue_subject("transcode-jobs")) == {minute(now): 1}


def test_an_unexplained_aws_error_is_recorded_with_its_code_and_message(mocked_aws, monkeypatch, now):
    make_queue("transcode-jobs")
    source = make_source(Kind.SQS_QUEUE, "transcode-jobs")
    sqs = aws.sqs_client()
    stubber = Stubber(sqs)
    stubber.add_client_error(
        "get_queue_url",
        service_error_code="InternalError",
        service_message="We encountered an internal error.",
        http_status_code=500,
    )
    stubber.activate()
    monkeypatch.setattr(aws, "sqs_client", lambda: sqs)

    collectors.collect_all(now)

    assert refreshed(source).last_error == ("InternalError calling sqs:GetQueueUrl: We encountered an internal error.")


def fail_before_sending(client, operation: str, error_class) -> list[int]:
    """Make every `operation` request of `client` fail as the network would; returns the attempt log."""
    attempts = []

    def fail(request, **kwargs):
        attempts.append(1)
        raise error_class(endpoint_url=request.url)

    service_id = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register(f"before-send.{service_id}.{operation}", fail)
    return attempts


def test_a_read_timeout_is_recorded_as_such_and_other_sources_still_collect(mocked_aws, monkeypatch, settings, now):
    settings.AWS_READ_TIMEOUT_SECONDS = 10
    settings.AWS_MAX_ATTEMPTS = 1  # no retry: standard retries back off for up to seconds
    make_group("upload-servers", 1)
    make_queue("transcode-jobs")
    cpu_source = make_source(Kind.AUTOSCALING_CPU, "upload-servers")
    queue_source = make_source(Kind.SQS_QUEUE, "transcode-jobs")
    cloudwatch = aws.cloudwatch_client()
    attempts = fail_before_sending(cloudwatch, "GetMetricData", ReadTimeoutError)
    monkeypatch.setattr(aws, "cloudwatch_client", lambda: cloudwatch)

    assert collectors.collect_all(now) == {"ok": 1, "failed": 1}

    assert refreshed(cpu_source).last_error == "timed out after 10 s talking to CloudWatch"
    assert refreshed(queue_source).last_error == ""
    assert len(attempts) == 1


def test_a_connect_timeout_is_recorded_with_the_endpoint(mocked_aws, monkeypatch, settings, now):
    settings.AWS_CONNECT_TIMEOUT_SECONDS = 3
    settings.AWS_MAX_ATTEMPTS = 1
    make_queue("transcode-jobs")
    source = make_source(Kind.SQS_QUEUE, "transcode-jobs")
    sqs = aws.sqs_client()
    fail_before_sending(sqs, "GetQueueUrl", ConnectTimeoutError)
    monkeypatch.setattr(aws, "sqs_client", lambda: sqs)

    collectors.collect_all(now)

    assert refreshed(source).last_error == (
        "could not connect to SQS within 3 s (https://sqs.us-east-1.amazonaws.com/)"
    )


def test_missing_credentials_are_recorded_as_such(mocked_aws, monkeypatch, now):
    # moto puts its own fake keys in the environment while it mocks: take them away.
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    source = make_source(Kind.SQS_QUEUE, "transcode-jobs")

    assert collectors.collect_all(now) == {"ok": 0, "failed": 1}

    assert refreshed(source).last_error.startswith("no AWS credentials configured")


def test_an_unexpected_error_is_recorded_and_not_raised(mocked_aws, monkeypatch, now):
    def broken_collector(source, now):
        raise KeyError("Attributes")

    monkeypatch.setitem(collectors.COLLECTORS, Kind.SQS_QUEUE, broken_collector)
    source = make_source(Kind.SQS_QUEUE, "transcode-jobs")

    assert collectors.collect_all(now) == {"ok": 0, "failed": 1}

    assert refreshed(source).last_error == "unexpected error: KeyError: 'Attributes'"


def test_a_failure_midway_through_writing_stores_nothing_for_that_run(mocked_aws, monkeypatch, now):
    first, second = make_group("upload-servers", 2)
    put_cpu(first, now - timedelta(minutes=2), 40.0)
    put_cpu(second, now - timedelta(minutes=2), 20.0)
    source = make_source(Kind.AUTOSCALING_CPU, "upload-servers")
    writes = []

    def write_then_fail(*args):
        if writes:
            raise RuntimeError("disk full")
        writes.append(args)
        write_minute_value(*args)

    monkeypatch.setattr(collectors, "write_minute_value", write_then_fail)

    collectors.collect_all(now)

    assert len(writes) == 1
    assert not Rollup.objects.exists()
    assert refreshed(source).last_error == "unexpected error: RuntimeError: disk full"


def test_a_success_after_a_failure_clears_the_error(mocked_aws, now):
    source = make_source(Kind.SQS_QUEUE, "transcode-jobs")
    collectors.collect_all(now)
    assert refreshed(source).failing

    make_queue("transcode-jobs")
    collectors.collect_all(now + timedelta(minutes=1))

    source = refreshed(source)
    assert (source.last_error, source.last_success_at) == ("", now + timedelta(minutes=1))
    assert source.last_error_at == now
    assert not source.failing


def test_disabled_sources_are_not_collected(mocked_aws, now):
    make_queue("transcode-jobs", message_count=1)
    source = MetricSource.objects.create(kind=Kind.SQS_QUEUE, name="transcode-jobs", enabled=False)

    assert collectors.collect_all(now) == {"ok": 0, "failed": 0}

    assert refreshed(source).last_attempt_at is None
    assert not Rollup.objects.exists()


def test_running_twice_in_the_same_minute_stores_one_row_per_minute(mocked_aws, now):
    (instance_id,) = make_group("upload-servers", 1)
    put_cpu(instance_id, now - timedelta(minutes=2), 40.0)
    queue_url = make_queue("transcode-jobs", message_count=2)
    make_source(Kind.AUTOSCALING_CPU, "upload-servers")
    make_source(Kind.SQS_QUEUE, "transcode-jobs")

    collectors.collect_all(now)
    boto3.client("sqs", region_name=REGION).send_message(QueueUrl=queue_url, MessageBody="one more")
    collectors.collect_all(now + timedelta(seconds=20))

    assert Rollup.objects.count() == 4  # instance, group, visible, in flight: one minute each
    assert series(metrics.QUEUE_VISIBLE, metrics.queue_subject("transcode-jobs")) == {minute(now): 3}


def test_the_worker_task_collects_every_enabled_source(mocked_aws):
    make_queue("transcode-jobs")
    make_source(Kind.SQS_QUEUE, "transcode-jobs")
    make_source(Kind.AUTOSCALING_CPU, "missing-group")

    assert tasks.collect_metrics() == {"ok": 1, "failed": 1}


# ---- Sources from settings, clients from settings ---------------------------------------------


def test_sync_sources_from_settings_creates_the_named_groups_and_queues(settings):
    settings.METRICS_AUTOSCALING_GROUPS = ["upload-servers", ""]
    settings.METRICS_SQS_QUEUES = ["transcode-jobs", "thumbnail-jobs"]

    assert collectors.sync_sources_from_settings() == 3

    assert set(MetricSource.objects.values_list("kind", "name", "enabled")) == {
        (Kind.AUTOSCALING_CPU, "upload-servers", True),
        (Kind.SQS_QUEUE, "transcode-jobs", True),
        (Kind.SQS_QUEUE, "thumbnail-jobs", True),
    }


def test_sync_sources_from_settings_leaves_other_and_disabled_sources_alone(settings):
    added_in_admin = make_source(Kind.SQS_QUEUE, "added-in-admin")
    MetricSource.objects.create(kind=Kind.SQS_QUEUE, name="transcode-jobs", enabled=False)
    settings.METRICS_AUTOSCALING_GROUPS = []
    settings.METRICS_SQS_QUEUES = ["transcode-jobs"]

    assert collectors.sync_sources_from_settings() == 0
    assert collectors.sync_sources_from_settings() == 0

    assert MetricSource.objects.count() == 2
    assert refreshed(added_in_admin).enabled
    assert not MetricSource.objects.get(name="transcode-jobs").enabled


def test_aws_clients_take_region_endpoint_timeouts_and_retries_from_settings(fake_aws_environment, settings):
    settings.AWS_REGION = "eu-west-1"
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:4566"
    settings.AWS_CONNECT_TIMEOUT_SECONDS = 2.5
    settings.AWS_READ_TIMEOUT_SECONDS = 7.0
    settings.AWS_MAX_ATTEMPTS = 4

    for client in (aws.autoscaling_client(), aws.cloudwatch_client(), aws.sqs_client()):
        assert client.meta.region_name == "eu-west-1"
        assert client.meta.endpoint_url == "http://127.0.0.1:4566"
        assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (2.5, 7.0)
        assert client.meta.config.retries == {"total_max_attempts": 4, "mode": "standard"}


def test_aws_clients_use_the_regional_aws_endpoint_when_none_is_configured(fake_aws_environment):
    assert aws.cloudwatch_client().meta.endpoint_url == "https://monitoring.us-east-1.amazonaws.com"
