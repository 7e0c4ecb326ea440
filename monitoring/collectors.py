"""What the worker collects every minute through boto3: CloudWatch CPU of the Auto Scaling groups'
instances and the depth of SQS queues, one `MetricSource` row each.

A collector asks AWS first and writes afterwards, in one transaction per source: no database
transaction (on SQLite, the write lock) is held while waiting on AWS, and a failure midway
stores nothing partial. Values are upserted per minute, so running twice stores nothing twice.
"""

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from monitoring import aws, metrics
from monitoring.models import MetricSource
from monitoring.rollups import write_minute_value

logger = logging.getLogger(__name__)

# CloudWatch publishes EC2 datapoints minutes late: every run re-reads this many minutes, so a
# late datapoint still lands and the group average is recomputed once it has arrived.
CPU_LOOKBACK_MINUTES = 10
CPU_PERIOD_SECONDS = 60
MAX_QUERIES_PER_GET_METRIC_DATA = 500

# (metric, subject, moment, value): one value for the minute that holds `moment`.
Sample = tuple[str, str, datetime, float]
Collector = Callable[[MetricSource, datetime], int]


# ---- Auto Scaling groups: CPUUtilization per instance and the group's average -------------


def collect_autoscaling_cpu(source: MetricSource, now: datetime) -> int:
    """Store the last minutes of CPU % per instance of the group, and the group's average."""
    instance_ids = group_instance_ids(source.name)
    if not instance_ids:  # a group scaled to zero has nothing to report; that is not a failure
        return 0
    cpu_by_instance = instance_cpu_percent_by_minute(instance_ids, now)
    samples = [
        (metrics.CPU_PERCENT, metrics.instance_subject(instance_id), minute, cpu_percent)
        for instance_id, by_minute in cpu_by_instance.items()
        for minute, cpu_percent in by_minute.items()
    ]
    group_subject = metrics.autoscaling_group_subject(source.name)
    samples += [
        (metrics.CPU_PERCENT, group_subject, minute, mean_cpu_percent)
        for minute, mean_cpu_percent in _mean_by_minute(cpu_by_instance.values()).items()
    ]
    return store(samples)


def group_instance_ids(group_name: str) -> list[str]:
    client = aws.autoscaling_client()
    with aws.explained_failures(client):
        groups = client.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])["AutoScalingGroups"]
    if not groups:
        raise aws.AwsError(f"Auto Scaling group {group_name} not found in region {client.meta.region_name}")
    return [instance["InstanceId"] for instance in groups[0].get("Instances", [])]


def instance_cpu_percent_by_minute(instance_ids: list[str], now: datetime) -> dict[str, dict[datetime, float]]:
    """{instance id: {minute start (UTC): average CPU %}} over the lookback window."""
    client = aws.cloudwatch_client()
    # CloudWatch aligns periods to StartTime: start on a whole minute so periods are minutes.
    start_time = metrics.bucket_start(now, CPU_PERIOD_SECONDS) - timedelta(minutes=CPU_LOOKBACK_MINUTES)
    cpu_by_instance: dict[str, dict[datetime, float]] = defaultdict(dict)
    for batch in _batches(instance_ids, MAX_QUERIES_PER_GET_METRIC_DATA):
        instance_by_query_id = {f"cpu{index}": instance_id for index, instance_id in enumerate(batch)}
        queries = [_cpu_query(query_id, instance_id) for query_id, instance_id in instance_by_query_id.items()]
        with aws.explained_failures(client):
            pages = client.get_paginator("get_metric_data").paginate(
                MetricDataQueries=queries, StartTime=start_time, EndTime=now, ScanBy="TimestampAscending"
            )
            for page in pages:
                for result in page["MetricDataResults"]:
                    by_minute = cpu_by_instance[instance_by_query_id[result["Id"]]]
                    for moment, cpu_percent in zip(result["Timestamps"], result["Values"]):
                        by_minute[_utc_minute(moment)] = cpu_percent
    return dict(cpu_by_instance)


def _cpu_query(query_id: str, instance_id: str) -> dict:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/EC2",
                "MetricName": "CPUUtilization",
                "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
            },
            "Period": CPU_PERIOD_SECONDS,
            "Stat": "Average",
        },
        "ReturnData": True,
    }


def _mean_by_minute(series: Iterable[dict[datetime, float]]) -> dict[datetime, float]:
    """The average over the instances that have a value in each minute."""
    values_by_minute: dict[datetime, list[float]] = defaultdict(list)
    for by_minute in series:
        for minute, value in by_minute.items():
            values_by_minute[minute].append(value)
    return {minute: sum(values) / len(values) for minute, values in values_by_minute.items()}


def _utc_minute(moment: datetime) -> datetime:
    return metrics.bucket_start(moment.astimezone(UTC), metrics.MINUTE_SECONDS)


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---- SQS queues: messages waiting and messages being processed ----------------------------


def collect_sqs_depth(source: MetricSource, now: datetime) -> int:
    """Store the queue's visible and in-flight message counts for the current minute."""
    visible, in_flight = queue_message_counts(source.name)
    subject = metrics.queue_subject(source.name)
    return store([(metrics.QUEUE_VISIBLE, subject, now, visible), (metrics.QUEUE_IN_FLIGHT, subject, now, in_flight)])


def queue_message_counts(queue_name: str) -> tuple[int, int]:
    """(visible, in flight) for the queue; both are approximate, as SQS says."""
    client = aws.sqs_client()
    with aws.explained_failures(client):
        try:
            queue_url = client.get_queue_url(QueueName=queue_name)["QueueUrl"]
        except client.exceptions.QueueDoesNotExist:
            raise aws.AwsError(f"SQS queue {queue_name} not found in region {client.meta.region_name}") from None
        attributes = client.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
    visible = int(attributes["ApproximateNumberOfMessages"])
    in_flight = int(attributes["ApproximateNumberOfMessagesNotVisible"])
    return visible, in_flight


# ---- Running every source -----------------------------------------------------------------


def store(samples: list[Sample]) -> int:
    with transaction.atomic():
        for metric, subject, moment, value in samples:
            write_minute_value(metric, subject, moment, value)
    return len(samples)


COLLECTORS: dict[str, Collector] = {
    MetricSource.Kind.AUTOSCALING_CPU: collect_autoscaling_cpu,
    MetricSource.Kind.SQS_QUEUE: collect_sqs_depth,
}


def collect_all(now: datetime | None = None) -> dict[str, int]:
    """Collect every enabled source; one failing source never stops the others. Never raises."""
    now = now or timezone.now()
    summary = {"ok": 0, "failed": 0}
    for source in MetricSource.objects.filter(enabled=True):
        summary["ok" if collect_source(source, now) else "failed"] += 1
    return summary


def collect_source(source: MetricSource, now: datetime) -> bool:
    """Run the source's collector and record how it went on the source; True when it worked."""
    try:
        collector = COLLECTORS.get(source.kind)
        if collector is None:
            raise aws.AwsError(f"no collector for metric sources of kind {source.kind!r}")
        collector(source, now)
    except Exception as error:  # noqa: BLE001 - whatever broke, record it and go on to the next source
        message = failure_message(error)
        logger.warning("collecting %s failed: %s", source, message)
        # An update by id, not save(): an admin may edit or delete the source meanwhile.
        MetricSource.objects.filter(pk=source.pk).update(last_attempt_at=now, last_error_at=now, last_error=message)
        return False
    MetricSource.objects.filter(pk=source.pk).update(last_attempt_at=now, last_success_at=now, last_error="")
    return True


def failure_message(error: Exception) -> str:
    if isinstance(error, aws.AwsError):
        return str(error)
    if isinstance(error, (ClientError, BotoCoreError)):
        return aws.explain(error)
    logger.exception("unexpected error while collecting metrics")
    return f"unexpected error: {type(error).__name__}: {error}"


def sync_sources_from_settings() -> int:
    """Create a source for each group and queue named in settings; returns how many were new.
    Sources added in the admin, or disabled there, are left as they are."""
    wanted = [(MetricSource.Kind.AUTOSCALING_CPU, name) for name in settings.METRICS_AUTOSCALING_GROUPS]
    wanted += [(MetricSource.Kind.SQS_QUEUE, name) for name in settings.METRICS_SQS_QUEUES]
    created_count = 0
    for kind, name in wanted:
        if name.strip():  # "a,,b" in the environment lists an empty name
            created_count += MetricSource.objects.get_or_create(kind=kind, name=name.strip())[1]
    return created_count
