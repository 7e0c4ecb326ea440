"""AWS's own target tracking for AWS groups: the engine the dashboard drives instead of its own.

Turning the policy on creates or updates one target-tracking policy on the group's average CPU
(PutScalingPolicy, named OUR_POLICY_NAME); turning it off deletes it (DeletePolicy). Any other
scaling policy on the group was made outside the dashboard (the console, Terraform, another
tool): it is shown and never fought — the dashboard refuses to add its own next to it, and the
home-made controller (fleet.policy) never drives an AWS group at all.
"""

from dataclasses import dataclass, field

from core.audit import RefusedChange
from fleet.models import ScalingGroup, ScalingPolicy
from monitoring import aws

# Ours by name: AWS scaling policies carry no tags, and the name is unique within a group.
OUR_POLICY_NAME = "upload-ops-target-cpu"
ACTIVITY_ROWS = 10
ABSENT = "absent"


class ForeignPolicyPresent(RefusedChange):
    """The group has a scaling policy made outside the dashboard; nothing was changed."""


@dataclass
class AwsPolicyState:
    """What AWS holds for one group: our policy (or None), the others, its recent activities."""

    ours: dict | None
    foreign: list[dict] = field(default_factory=list)
    activities: list[dict] = field(default_factory=list)

    def in_step_with(self, policy: ScalingPolicy) -> bool:
        """Does AWS run what the dashboard asks (including: nothing, when the policy is off)?"""
        return summary(self.ours) == wanted_summary(policy)


def read_policies(group: ScalingGroup) -> tuple[dict | None, list[dict]]:
    """(our policy or None, the foreign ones); AwsError when AWS cannot be read."""
    policies = aws.describe_scaling_policies(aws.autoscaling_client(), group.aws_group_name)
    ours = next((p for p in policies if p["PolicyName"] == OUR_POLICY_NAME), None)
    return ours, [p for p in policies if p["PolicyName"] != OUR_POLICY_NAME]


def read_state(group: ScalingGroup) -> AwsPolicyState:
    ours, foreign = read_policies(group)
    activities = aws.describe_scaling_activities(aws.autoscaling_client(), group.aws_group_name, ACTIVITY_ROWS)
    return AwsPolicyState(ours, foreign, activities)


def summary(described: dict | None) -> str:
    """A policy as AWS describes it, in words (also what the audit log keeps before → after)."""
    if described is None:
        return ABSENT
    config = described.get("TargetTrackingConfiguration") or {}
    metric = (config.get("PredefinedMetricSpecification") or {}).get("PredefinedMetricType", "a custom metric")
    if described.get("PolicyType") != "TargetTrackingScaling":
        return f"{described.get('PolicyType', 'unknown type')} policy"
    warmup = described.get("EstimatedInstanceWarmup")
    return _words(metric, config.get("TargetValue"), warmup, bool(config.get("DisableScaleIn")))


def wanted_summary(policy: ScalingPolicy) -> str:
    if not policy.enabled:
        return ABSENT
    return _words("ASGAverageCPUUtilization", policy.target_cpu_percent, policy.warmup_seconds, policy.never_scale_in)


def _words(metric: str, target, warmup_seconds, disable_scale_in: bool) -> str:
    target_text = f"{float(target):g}" if target is not None else "?"
    warmup_text = f", warm-up {warmup_seconds} s" if warmup_seconds is not None else ""
    scale_in = ", never scales in" if disable_scale_in else ""
    return f"target tracking: {metric} at {target_text}%{warmup_text}{scale_in}"


def foreign_policy_message(group: ScalingGroup, foreign: list[dict]) -> str:
    names = ", ".join(f"{p['PolicyName']} ({p.get('PolicyType', 'unknown type')})" for p in foreign)
    return (
        f"{group.aws_group_name} already has a scaling policy made outside the dashboard: {names}. "
        "Two policies would fight over the group, so the dashboard adds none: remove that one in AWS "
        "first, or leave scaling to it. Nothing was changed."
    )


def apply(policy: ScalingPolicy) -> tuple[str, str]:
    """Make AWS run what `policy` asks; (before, after) in words, equal when AWS was already so.

    Refused (ForeignPolicyPresent) when turning it on next to a policy made outside the
    dashboard; AwsError when AWS fails. Either way AWS is left as it was.
    """
    group = policy.group
    ours, foreign = read_policies(group)
    before, after = summary(ours), wanted_summary(policy)
    if policy.enabled and foreign:
        raise ForeignPolicyPresent(foreign_policy_message(group, foreign))
    if before == after:
        return before, after
    client = aws.autoscaling_client()
    if policy.enabled:
        aws.put_target_tracking_policy(
            client,
            group.aws_group_name,
            OUR_POLICY_NAME,
            policy.target_cpu_percent,
            policy.warmup_seconds,
            policy.never_scale_in,
        )
    else:
        aws.delete_scaling_policy(client, group.aws_group_name, OUR_POLICY_NAME)
    return before, after
