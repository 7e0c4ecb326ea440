"""A worker killed in the middle of a scaling action: the claim means no duplicate; the sweeper
settles the action by what the group shows, so it is never lost and never applied twice."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from fleet import backends, scaling
from fleet.models import ScalingAction, ScalingGroup
from monitoring.aws import AwsError
from tests.factories import make_local_group

pytestmark = pytest.mark.django_db
Status = ScalingAction.Status


def abandoned_action(ops_user, desired=2, to_capacity=3, cooldown_seconds=300) -> ScalingAction:
    """What a worker killed right after its claim and cooldown reservation leaves behind."""
    group = make_local_group("sim-fleet", desired=desired, cooldown_seconds=cooldown_seconds)
    action, _ = scaling.request_scaling(group, ops_user, 2, to_capacity, "import", idempotency_key=uuid.uuid4())
    assert action.start()
    ScalingGroup.objects.filter(pk=group.pk).update(last_scaled_at=action.started_at)
    return action


def later() -> timezone.datetime:
    return timezone.now() + timedelta(seconds=scaling.ABANDONED_ACTION_SECONDS + 1)


def test_a_retried_message_of_a_claimed_action_scales_nothing(ops_user):
    action = abandoned_action(ops_user)
    assert scaling.run_action(action.pk) == Status.RUNNING
    assert ScalingGroup.objects.get(pk=action.group_id).desired_capacity == 2


def test_an_action_whose_worker_died_before_the_change_is_queued_again_and_applied_once(ops_user):
    action = abandoned_action(ops_user)
    assert scaling.recover_abandoned(now=timezone.now()) == 0, "a fresh claim may still be working"

    assert scaling.recover_abandoned(now=later()) == 1
    action.refresh_from_db()
    assert action.status == Status.REQUESTED and "queued again" in action.message
    assert scaling.enqueue_waiting(now=later()) == 1  # the tests' queue runs it at once

    action.refresh_from_db()
    assert (action.status, action.attempts) == (Status.SUCCEEDED, 2)
    assert ScalingGroup.objects.get(pk=action.group_id).desired_capacity == 3
    assert scaling.recover_abandoned(now=later()) == 0 and scaling.enqueue_waiting(now=later()) == 0


def test_an_action_whose_worker_died_after_the_change_is_marked_succeeded_and_not_repeated(ops_user, monkeypatch):
    action = abandoned_action(ops_user)
    ScalingGroup.objects.filter(pk=action.group_id).update(desired_capacity=3)  # the change landed
    calls = []
    monkeypatch.setattr(backends.LocalBackend, "set_desired", lambda self, group, capacity: calls.append(capacity))

    assert scaling.recover_abandoned(now=later()) == 1

    action.refresh_from_db()
    assert action.status == Status.SUCCEEDED and "confirmed after its worker stopped midway" in action.message
    assert scaling.enqueue_waiting(now=later()) == 0 and calls == []


def test_a_group_changed_by_someone_else_meanwhile_fails_the_action_in_words(ops_user):
    action = abandoned_action(ops_user)
    ScalingGroup.objects.filter(pk=action.group_id).update(desired_capacity=5)
    assert scaling.recover_abandoned(now=later()) == 1
    action.refresh_from_db()
    assert action.status == Status.FAILED
    assert "check the group's desired capacity" in action.message and "sim-fleet is now at 5" in action.message
    assert ScalingGroup.objects.get(pk=action.group_id).desired_capacity == 5


def test_an_action_that_loses_its_worker_every_time_is_given_up_after_the_last_attempt(ops_user):
    action = abandoned_action(ops_user)
    ScalingAction.objects.filter(pk=action.pk).update(attempts=scaling.MAX_ACTION_ATTEMPTS)
    assert scaling.recover_abandoned(now=later()) == 1
    action.refresh_from_db()
    assert action.status == Status.FAILED
    assert ScalingGroup.objects.get(pk=action.group_id).desired_capacity == 2


def test_a_group_that_cannot_be_read_leaves_the_action_for_the_next_sweep(ops_user, monkeypatch):
    action = abandoned_action(ops_user)

    def unreadable(self, group):
        raise AwsError("timed out after 10 s talking to Auto Scaling")

    monkeypatch.setattr(backends.LocalBackend, "describe", unreadable)
    assert scaling.recover_abandoned(now=later()) == 0
    action.refresh_from_db()
    assert action.status == Status.RUNNING
