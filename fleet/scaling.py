"""Scaling a group: request an action (audited), then run it once in a django-q2 task.

Guard rails, in order: the group's min and max, its cooldown, and the capacity the requester
saw (a stale confirmation is refused) — all before the backend is asked to change anything.
"""

import logging
import uuid
from datetime import timedelta

from botocore.exceptions import ReadTimeoutError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from core import audit
from fleet.backends import backend_for
from fleet.models import ScalingAction, ScalingAudit, ScalingGroup
from monitoring.aws import AwsError

logger = logging.getLogger(__name__)

RUN_TASK = "fleet.tasks.run_scaling_action"


def pending_action(group: ScalingGroup) -> ScalingAction | None:
    """The newest scaling of the group that the worker has not finished yet."""
    return (
        group.actions.filter(status__in=[ScalingAction.Status.REQUESTED, ScalingAction.Status.RUNNING])
        .order_by("-requested_at", "-id")
        .first()
    )


def request_scaling(
    group: ScalingGroup, actor, from_capacity: int, to_capacity: int, reason: str, idempotency_key: uuid.UUID
) -> tuple[ScalingAction, bool]:
    """The action for this key, created with its audit entry unless it exists; (action, created).

    A second submit of the same confirmation finds the first action and scales nothing.
    """
    existing = ScalingAction.objects.filter(idempotency_key=idempotency_key).first()
    if existing:
        return existing, False
    try:
        with transaction.atomic():
            action = ScalingAction.objects.create(
                group=group,
                requested_by=actor,
                requested_by_name=actor.get_username() if actor else ScalingAction.POLICY_NAME,
                from_capacity=from_capacity,
                to_capacity=to_capacity,
                reason=reason,
                idempotency_key=idempotency_key,
            )
            audit.record(
                actor,
                ScalingAudit.SCALING_REQUESTED,
                f"scaling group {group.name}",
                {"desired_capacity": from_capacity},
                {"desired_capacity": to_capacity},
                reason if actor else f"policy: {reason}",
                group,
            )
    except IntegrityError:  # the same key, submitted at the same moment: the other one won
        return ScalingAction.objects.get(idempotency_key=idempotency_key), False
    return action, True


# A requested action not started after this long was never queued (the broker was down) or its
# message was lost; the policy task queues it again. run_action's claim makes a repeat harmless.
WAITING_ACTION_REQUEUE_SECONDS = 120


def enqueue(action: ScalingAction) -> bool:
    """Run the action in the worker (in-process when Q_CLUSTER is sync, as in tests).

    False when the broker (Redis) is unreachable: the action stays saved as requested and
    enqueue_waiting() queues it once the broker is back.
    """
    try:
        async_task(RUN_TASK, action.pk, task_name=f"scale {action.group.name} #{action.pk}")
    except Exception as error:  # noqa: BLE001 - redis, ORM or any broker: the saved action is the record
        logger.warning("task queue unreachable; scaling action %s waits: %s", action.pk, error)
        return False
    return True


# Longer than the django-q2 task timeout (60 s) plus AWS's bounded timeouts and retries: an
# action still running after this lost its worker (killed, OOM, deploy) midway, and any call it
# made to AWS has landed or never will.
ABANDONED_ACTION_SECONDS = 600
# Claims of one action before the sweeper stops handing it back (a worker that dies on it every time).
MAX_ACTION_ATTEMPTS = 3
ABANDONED_MESSAGE = (
    "The worker stopped during this action; it may or may not have been applied: "
    "check the group's desired capacity before scaling again."
)


def recover_abandoned(now=None) -> int:
    """Settle the actions whose worker died midway, by what the group shows now; returns how many.

    The broker is no help here (django-q2 on Redis never acknowledges: a message taken by a worker
    that died is gone), so the ScalingAction row is the job's record. At the new capacity: it was
    applied (succeeded). Still at the old one: it never took effect, so it is handed back and
    queued again (enqueue_waiting), up to MAX_ACTION_ATTEMPTS claims. Anything else: failed in
    words. A group that cannot be read now is asked again at the next sweep. Never scales twice.
    """
    cutoff = (now or timezone.now()) - timedelta(seconds=ABANDONED_ACTION_SECONDS)
    abandoned = ScalingAction.objects.select_related("group").filter(
        status=ScalingAction.Status.RUNNING, started_at__lte=cutoff
    )
    settled = 0
    for action in abandoned:
        try:
            current = backend_for(action.group).describe(action.group).desired
        except AwsError as error:
            logger.warning("scaling action %s abandoned, group unreadable; next sweep: %s", action.pk, error)
            continue
        settled += _settle_abandoned(action, current)
    return settled


def _settle_abandoned(action: ScalingAction, current: int) -> bool:
    name = action.group.name
    if current == action.to_capacity:
        return action.succeed(
            f"Desired capacity of {name} set from {action.from_capacity} to {action.to_capacity} "
            "(confirmed after its worker stopped midway)."
        )
    if current == action.from_capacity and action.attempts < MAX_ACTION_ATTEMPTS:
        started_at = action.started_at
        if not action.release(
            f"Attempt {action.attempts} stopped with its worker before {name} changed; it is queued again."
        ):
            return False
        # Free the cooldown slot this action reserved, so its own reservation does not refuse it.
        ScalingGroup.objects.filter(pk=action.group_id, last_scaled_at__gte=started_at).update(last_scaled_at=None)
        return True
    return action.fail(f"{ABANDONED_MESSAGE} {name} is now at {current}.")


def enqueue_waiting(now=None) -> int:
    """Queue again the requested actions that never started; returns how many were queued."""
    cutoff = (now or timezone.now()) - timedelta(seconds=WAITING_ACTION_REQUEUE_SECONDS)
    waiting = ScalingAction.objects.select_related("group").filter(
        status=ScalingAction.Status.REQUESTED, requested_at__lte=cutoff
    )
    return sum(enqueue(action) for action in waiting)


def run_action(action_id: int) -> str:
    """Carry out a requested action once; returns its final status. Safe to run twice."""
    action = ScalingAction.objects.select_related("group").get(pk=action_id)
    if not action.start():
        return action.status  # claimed by an earlier run: never scale twice
    group = ScalingGroup.objects.get(pk=action.group_id)
    problem = group.bounds_problem(action.to_capacity)
    if problem:
        action.refuse(f"Refused: {problem} Nothing was changed.")
        return action.status
    previous_scaled_at = group.last_scaled_at
    reserved_at = _reserve_cooldown(group)
    if reserved_at is None:
        action.refuse(cooldown_message(ScalingGroup.objects.get(pk=group.pk)))
        return action.status
    try:
        _scale(group, action)
    except Exception as error:  # noqa: BLE001 - whatever broke, the action says so and frees the group
        ScalingGroup.objects.filter(pk=group.pk, last_scaled_at=reserved_at).update(last_scaled_at=previous_scaled_at)
        if isinstance(error, _Stale):
            action.refuse(str(error))
        else:
            if not isinstance(error, AwsError):
                logger.exception("scaling action %s failed unexpectedly", action.pk)
            action.fail(failure_message(error))
    return action.status


class _Stale(Exception):
    pass


def _scale(group: ScalingGroup, action: ScalingAction) -> None:
    backend = backend_for(group)
    current = backend.describe(group).desired
    if current != action.from_capacity:
        raise _Stale(
            f"Refused: {group.name} is now at {current}, not {action.from_capacity} as when this was "
            f"requested. Nothing was changed; review the group and scale again."
        )
    backend.set_desired(group, action.to_capacity)
    action.succeed(f"Desired capacity of {group.name} set from {action.from_capacity} to {action.to_capacity}.")


def _reserve_cooldown(group: ScalingGroup):
    """Take the group's cooldown slot with one conditional update; the time, or None if in cooldown."""
    now = timezone.now()
    free = Q(last_scaled_at=None) | Q(last_scaled_at__lte=now - timedelta(seconds=group.cooldown_seconds))
    return now if ScalingGroup.objects.filter(free, pk=group.pk).update(last_scaled_at=now) else None


def cooldown_message(group: ScalingGroup) -> str:
    return (
        f"Refused: {group.name} was scaled at {group.last_scaled_at:%H:%M:%S} UTC and its "
        f"{group.cooldown_seconds} s cooldown lasts until {group.cooldown_ends_at():%H:%M:%S} UTC. "
        "Nothing was changed; try again after that."
    )


def failure_message(error: Exception) -> str:
    if isinstance(error, AwsError) and isinstance(error.__cause__, ReadTimeoutError):
        # The request may have reached AWS: say so rather than promise nothing changed.
        return (
            f"AWS error: {str(error).rstrip('.')}. AWS may have applied it: check the group's "
            "desired capacity before scaling again."
        )
    if isinstance(error, AwsError):
        return f"AWS error: {str(error).rstrip('.')}. Nothing was changed."
    return f"Unexpected error: {type(error).__name__}: {error}. Nothing was changed."
