"""Which enrolled servers belong to which scaling group, and which ones a scale-in terminated.

A terminated server is marked gone (monitoring.servers.mark_gone), with when and why: it is no
longer counted, its token is refused, and the "server silent" rule does not page anyone for
it. Only silent, enrolled servers of a group are ever marked: a server registered by hand, or
one that still reports, is never touched here.

- AWS groups: a server belongs to the group it named at enrolment (the dashboard name or the
  AWS group name) or whose instances list its instance id (learned here, every minute). It is
  terminated once its instance is Terminating or Terminated, or no longer in the group.
- Local groups (the simulated fleet): a server belongs to the group it named at enrolment. The
  simulated fleet runs exactly the group's desired capacity, so a member that is silent while
  at least that many members report was stopped by a scale-in.

Runs every minute (fleet.tasks.mark_terminated_servers_gone) and just before the "server
silent" rule is evaluated (alerting.evaluation), so a scale-in's servers are gone before the
rule could see them silent. An AWS failure skips that group until the next run.
"""

import logging
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from fleet.models import ScalingAction, ScalingGroup
from monitoring import aws, servers
from monitoring.models import UploadServer

logger = logging.getLogger(__name__)

# A host that has just enrolled has not had the time to report yet: not silent, whatever it is.
FRESH_ENROLMENT_SECONDS = 60


def mark_terminated_servers_gone(now=None) -> list[str]:
    """Mark gone every enrolled server a scale-in terminated; returns their names."""
    now = now or timezone.now()
    gone: list[str] = []
    for group in ScalingGroup.objects.all():
        try:
            gone += _terminated_in_aws_group(group, now) if group.is_aws else _stopped_in_local_group(group, now)
        except aws.AwsError as error:
            logger.warning("could not tell which servers of %s were terminated: %s", group.name, error)
    return gone


def has_silent_enrolled_servers(now=None) -> bool:
    """Cheap: is there anything a scale-in could have terminated?"""
    return _silent(_enrolled(), now or timezone.now()).exists()


def _enrolled():
    return UploadServer.objects.filter(host_id__isnull=False, gone_at=None, revoked_at=None)


def _silent(servers_queryset, now):
    """Silent, and not just enrolled (a fresh host has not had the time to report yet)."""
    return servers_queryset.filter(Q(silent_after=None) | Q(silent_after__lte=now)).exclude(
        enrolled_at__gt=now - timedelta(seconds=FRESH_ENROLMENT_SECONDS)
    )


def _members(group: ScalingGroup):
    names = [group.name] + ([group.aws_group_name] if group.is_aws else [])
    return _enrolled().filter(scaling_group__in=names)


def _terminated_in_aws_group(group: ScalingGroup, now) -> list[str]:
    described = aws.describe_autoscaling_group(aws.autoscaling_client(), group.aws_group_name)
    states = {instance["InstanceId"]: instance["LifecycleState"] for instance in described.get("Instances", [])}
    # Learn membership from the group's own list: a host need not name its group.
    names = [group.name, group.aws_group_name]
    _enrolled().filter(instance_id__in=list(states)).exclude(scaling_group__in=names).update(scaling_group=group.name)
    gone = []
    for server in _silent(_members(group).exclude(instance_id=""), now):
        state = states.get(server.instance_id)
        if state is None:
            why = f"terminated: instance {server.instance_id} is no longer in Auto Scaling group {group.aws_group_name}"
        elif state.startswith("Terminat"):
            why = f"terminated: instance {server.instance_id} is {state} in Auto Scaling group {group.aws_group_name}"
        else:
            continue  # still in service, only silent: that is what the alert is for
        if servers.mark_gone(server, why + _latest_scale_in(group), now=now):
            gone.append(server.name)
    return gone


def _stopped_in_local_group(group: ScalingGroup, now) -> list[str]:
    members = _members(group)
    reporting = members.filter(silent_after__gt=now).count()
    if reporting < group.desired_capacity:
        return []  # the group is short of servers: a silent one may be a crash, worth a page
    why = f"stopped: local group {group.name} runs {group.desired_capacity} servers and {reporting} report"
    return [
        server.name
        for server in _silent(members, now)
        if servers.mark_gone(server, why + _latest_scale_in(group), now=now)
    ]


def _latest_scale_in(group: ScalingGroup) -> str:
    """ ", after the scale-in 3 → 2 by ops at 10:04 UTC" when the group's latest scaling was one."""
    latest = (
        ScalingAction.objects.filter(group=group, status=ScalingAction.Status.SUCCEEDED)
        .order_by("-finished_at", "-id")
        .first()
    )
    if latest is None or latest.to_capacity >= latest.from_capacity:
        return ""
    return (
        f", after the scale-in {latest.from_capacity} → {latest.to_capacity} by {latest.requested_by_name}"
        f" at {latest.finished_at:%Y-%m-%d %H:%M} UTC"
    )
