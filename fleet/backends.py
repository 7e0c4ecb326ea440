"""Where a scaling group's capacity lives: an AWS Auto Scaling group, or the local simulated fleet.

Both answer `describe(group)` and `set_desired(group, capacity)`; AWS failures come out as
monitoring.aws.AwsError with a message a person understands.
"""

from dataclasses import dataclass, field
from datetime import timedelta

from django.utils import timezone

from fleet.models import ScalingGroup
from monitoring import aws, queries
from monitoring.models import UploadServer

# An instance's CPU older than this is not shown as current.
CPU_FRESH_MINUTES = 10


@dataclass
class Member:
    name: str
    state: str
    cpu_percent: float | None


@dataclass
class GroupState:
    desired: int
    min_size: int
    max_size: int
    in_service: int
    pending: int
    members: list[Member] = field(default_factory=list)


class LocalBackend:
    def describe(self, group: ScalingGroup) -> GroupState:
        servers = list(
            UploadServer.objects.filter(revoked_at=None, gone_at=None, name__startswith=group.server_name_prefix)
        )
        now = timezone.now()
        live = [server for server in servers if not server.is_silent(now)]
        # Before any server reports, the simulated fleet is taken to run what was asked for.
        in_service = len(live) if live else group.desired_capacity
        members = [
            Member(server.name, "silent" if server.is_silent(now) else "live", server.last_cpu_percent)
            for server in servers
        ]
        return GroupState(
            desired=group.desired_capacity,
            min_size=group.min_capacity,
            max_size=group.max_capacity,
            in_service=in_service,
            pending=max(0, group.desired_capacity - in_service),
            members=members,
        )

    def set_desired(self, group: ScalingGroup, capacity: int) -> None:
        ScalingGroup.objects.filter(pk=group.pk).update(desired_capacity=capacity)
        group.desired_capacity = capacity


class AwsBackend:
    def describe(self, group: ScalingGroup) -> GroupState:
        described = aws.describe_autoscaling_group(aws.autoscaling_client(), group.aws_group_name)
        instances = described.get("Instances", [])
        states = [instance["LifecycleState"] for instance in instances]
        cpu = queries.latest_instance_cpu(
            [instance["InstanceId"] for instance in instances],
            since=timezone.now() - timedelta(minutes=CPU_FRESH_MINUTES),
        )
        members = [
            Member(
                instance["InstanceId"],
                f"{instance['LifecycleState']} · {instance.get('HealthStatus', '')}",
                cpu.get(instance["InstanceId"]),
            )
            for instance in instances
        ]
        return GroupState(
            desired=described["DesiredCapacity"],
            min_size=described["MinSize"],
            max_size=described["MaxSize"],
            in_service=states.count("InService"),
            pending=sum(state.startswith("Pending") for state in states),
            members=members,
        )

    def set_desired(self, group: ScalingGroup, capacity: int) -> None:
        aws.set_autoscaling_desired_capacity(aws.autoscaling_client(), group.aws_group_name, capacity)


def backend_for(group: ScalingGroup) -> LocalBackend | AwsBackend:
    return AwsBackend() if group.is_aws else LocalBackend()
