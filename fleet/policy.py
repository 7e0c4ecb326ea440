"""The automatic policy: target tracking on a group's CPU, evaluated every minute.

This home-made controller drives only the local backend (the simulated fleet); AWS groups get
AWS's own target-tracking policy (fleet.aws_policy), with the same target.

Scale out at once (on the CPU averaged over a few minutes), scale in only once the CPU has
stayed low for the whole stabilization window (sized on the window's highest minute), a cap on
the step, never on missing or stale data. Every evaluation is a PolicyDecision whose reason reads
like AWS's scaling-activity cause; an action goes through scaling.request_scaling like a person's.
"""

import math
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from core import audit
from fleet import aws_policy, scaling
from fleet.backends import backend_for
from fleet.models import (
    AWS_POLICY_FIELDS,
    POLICY_FIELDS,
    PolicyDecision,
    ScalingAction,
    ScalingAudit,
    ScalingGroup,
    ScalingPolicy,
)
from monitoring import metrics, queries
from monitoring.aws import AwsError

Outcome = PolicyDecision.Outcome
# {minute start: CPU %} for the group between two moments.
CpuSource = Callable[[ScalingGroup, datetime, datetime], dict[datetime, float]]
KEY_NAMESPACE = uuid.UUID("5b0f3d1e-8c1a-4c57-9a55-0d7f9f1c2a10")
DECISION_RETENTION_DAYS = 30
# An action requested or running longer than this is taken to be stuck (its worker died), so it
# does not hold the policy back for ever; the action itself stays as it is for a person to read.
ACTION_IN_PROGRESS_MINUTES = 10


def stored_cpu(group: ScalingGroup, since: datetime, until: datetime) -> dict[datetime, float]:
    """The group's CPU per minute for since <= minute <= until."""
    return queries.cpu_minutes(group.cpu_subject(), since, until + timedelta(minutes=1))


def save_policy(policy: ScalingPolicy, actor, reason: str) -> bool:
    """Save ops' edit of a group's policy with its audit entry; False when nothing changed.

    For an AWS group the edit goes to AWS's own target tracking first (fleet.aws_policy), under
    the group's row lock: if AWS refuses or fails, nothing is saved (AwsError, ForeignPolicyPresent).
    """
    fields = AWS_POLICY_FIELDS if policy.group.is_aws else POLICY_FIELDS
    with transaction.atomic():
        ScalingGroup.objects.select_for_update().get(pk=policy.group_id)
        stored = ScalingPolicy.objects.filter(pk=policy.pk).first() if policy.pk else None
        before = model_to_dict(stored, fields=fields) if stored else {}
        before, after = audit.diff(before, model_to_dict(policy, fields=fields))
        if policy.group.is_aws:
            in_aws_before, in_aws_after = aws_policy.apply(policy)
            if in_aws_before != in_aws_after:
                before["in_aws"], after["in_aws"] = in_aws_before, in_aws_after
        if not after:
            return False
        policy.save()
        audit.record(
            actor,
            ScalingAudit.SCALING_POLICY_CHANGED,
            f"scaling policy of {policy.group.name}",
            before,
            after,
            reason,
            policy.group,
        )
    return True


def evaluate_all(now: datetime | None = None, cpu_source: CpuSource = stored_cpu) -> dict:
    summary: dict[str, int] = {}
    now = now or timezone.now()
    # AWS groups scale on AWS's own target tracking (fleet.aws_policy): this controller never
    # touches them, so it can never fight a policy there, ours or one made outside the dashboard.
    local = ScalingPolicy.objects.filter(enabled=True, group__backend=ScalingGroup.Backend.LOCAL)
    for policy in local.select_related("group"):
        decision = evaluate(policy, now, cpu_source)
        summary[decision.outcome] = summary.get(decision.outcome, 0) + 1
        expired = now - timedelta(days=DECISION_RETENTION_DAYS)
        PolicyDecision.objects.filter(group=policy.group_id, action=None, evaluated_minute__lt=expired).delete()
    return summary


def evaluate(policy: ScalingPolicy, now: datetime | None = None, cpu_source: CpuSource = stored_cpu) -> PolicyDecision:
    """Decide for this minute, once: a second run in the same minute returns the first decision."""
    if policy.group.is_aws:
        raise ValueError(f"{policy.group.name} is an AWS group: AWS's own target tracking scales it.")
    policy.group = group = ScalingGroup.objects.get(pk=policy.group_id)  # its capacity as of now
    minute = metrics.bucket_start(now or timezone.now(), metrics.MINUTE_SECONDS)
    done = PolicyDecision.objects.filter(group=group, evaluated_minute=minute).first()
    if done:
        return done
    outcome, cpu, from_capacity, to_capacity, reason = _decide(policy, minute, cpu_source)
    action = None
    if outcome in (Outcome.SCALE_OUT, Outcome.SCALE_IN):
        key = uuid.uuid5(KEY_NAMESPACE, f"{group.pk}:{minute.isoformat()}")
        action, _ = scaling.request_scaling(group, None, from_capacity, to_capacity, reason, key)
    try:
        with transaction.atomic():
            decision = PolicyDecision.objects.create(
                group=group,
                evaluated_minute=minute,
                outcome=outcome,
                cpu_percent=cpu,
                from_capacity=from_capacity,
                to_capacity=to_capacity,
                reason=reason,
                action=action,
            )
    except IntegrityError:  # another worker decided this minute meanwhile
        return PolicyDecision.objects.get(group=group, evaluated_minute=minute)
    if action is not None and action.status == ScalingAction.Status.REQUESTED:
        scaling.enqueue(action)
    return decision


def _decide(policy: ScalingPolicy, minute: datetime, cpu_source: CpuSource):
    group = policy.group
    at = f"At {minute:%H:%M}"
    label = f"{group.aws_group_name} CPU" if group.is_aws else "fleet CPU"
    history_minutes = max(policy.stabilization_minutes, policy.evaluation_minutes, policy.max_data_age_minutes)
    series = cpu_source(group, minute - timedelta(minutes=history_minutes), minute)
    newest = max(series, default=None)
    if newest is None or newest < minute - timedelta(minutes=policy.max_data_age_minutes):
        return (
            Outcome.NO_DATA,
            None,
            None,
            None,
            f"{at} no {label} sample in the last {policy.max_data_age_minutes} min: no data, no action.",
        )
    try:
        state = backend_for(group).describe(group)
    except AwsError as error:
        return Outcome.ERROR, None, None, None, f"{at} the group could not be read ({error}): no action."
    desired = state.desired
    capacity = state.in_service or desired
    target, tolerance = policy.target_cpu_percent, policy.tolerance_percent / 100
    recent = [
        value for moment, value in series.items() if moment > newest - timedelta(minutes=policy.evaluation_minutes)
    ]
    average = sum(recent) / len(recent)
    seen = f"{at} {label} averaged {average:.0f}% over {len(recent)} min"

    def hold(why: str):
        return Outcome.HOLD, average, desired, desired, f"{seen}, {why}: no change at {desired}."

    in_progress = ScalingAction.objects.filter(
        group=group,
        status__in=[ScalingAction.Status.REQUESTED, ScalingAction.Status.RUNNING],
        requested_at__gte=minute - timedelta(minutes=ACTION_IN_PROGRESS_MINUTES),
    )
    if in_progress.exists():
        return hold("but an earlier scaling action is still in progress")
    if average > target * (1 + tolerance):
        wanted = math.ceil(capacity * average / target)
        new = min(wanted, desired + policy.max_step, group.max_capacity)
        if new <= desired and desired >= group.max_capacity:
            return hold(f"above the {target:.0f}% target, but the group is at its maximum of {group.max_capacity}")
        if new <= desired:  # servers still starting (in service < desired) already cover it
            return hold(
                f"above the {target:.0f}% target, but {desired} servers already requested "
                f"({state.in_service} in service) cover it"
            )
        if group.in_cooldown(minute):
            return hold(
                f"above the {target:.0f}% target, but the group is in cooldown until "
                f"{group.cooldown_ends_at():%H:%M:%S}"
            )
        if new == desired + policy.max_step < wanted:
            capped = f" (step capped at {policy.max_step})"
        else:
            capped = f" (capped at the maximum of {group.max_capacity})" if new < wanted else ""
        return (
            Outcome.SCALE_OUT,
            average,
            desired,
            new,
            f"{seen}, above the {target:.0f}% target: increasing capacity from {desired} to {new}{capped}.",
        )
    if average < target * (1 - tolerance) and not policy.never_scale_in:
        return _scale_in(policy, series, newest, minute, capacity, desired, seen, hold)
    if average < target * (1 - tolerance):
        return hold(f"below the {target:.0f}% target, but this policy never scales in")
    return hold(f"within {policy.tolerance_percent:.0f}% of the {target:.0f}% target")


def _scale_in(policy, series, newest, minute, capacity, desired, seen, hold):
    group, target = policy.group, policy.target_cpu_percent
    window = [
        value for moment, value in series.items() if moment > newest - timedelta(minutes=policy.stabilization_minutes)
    ]
    if len(window) < policy.stabilization_minutes:
        return hold(
            f"below the {target:.0f}% target, but only {len(window)} of the "
            f"{policy.stabilization_minutes} min stabilization window have data"
        )
    peak = max(window)
    if peak >= target * (1 - policy.tolerance_percent / 100):
        return hold(
            f"below the {target:.0f}% target, but it reached {peak:.0f}% within the "
            f"{policy.stabilization_minutes} min stabilization window"
        )
    wanted = max(1, math.ceil(capacity * peak / target))
    new = max(wanted, desired - policy.max_step, group.min_capacity)
    if wanted >= desired:
        return hold(f"below the {target:.0f}% target, but fewer servers would take it above")
    if new >= desired:
        return hold(f"below the {target:.0f}% target, but the group is at its minimum of {group.min_capacity}")
    if group.in_cooldown(minute):
        return hold(
            f"below the {target:.0f}% target, but the group is in cooldown until {group.cooldown_ends_at():%H:%M:%S}"
        )
    capped = f" (step capped at {policy.max_step})" if new == desired - policy.max_step > wanted else ""
    return (
        Outcome.SCALE_IN,
        peak,
        desired,
        new,
        f"{seen}, at most {peak:.0f}% over the {policy.stabilization_minutes} min stabilization window, "
        f"below the {target:.0f}% target: decreasing capacity from {desired} to {new}{capped}.",
    )
