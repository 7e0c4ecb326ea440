"""A worker killed in the middle of a scaling action: the claim means no duplicate, the sweeper means no silent loss."""

import uuid
from datetime import timedelta

from django.utils import timezone

from fleet import scaling
from fleet.models import ScalingAction, ScalingGroup
from tests.factories import make_local_group


def test_an_action_whose_worker_died_midway_is_failed_in_words_and_never_run_twice(db, ops_user):
    group = make_local_group("sim-fleet", desired=2, cooldown_seconds=0)
    action, _ = scaling.request_scaling(group, ops_user, 2, 3, "import", idempotency_key=uuid.uuid4())
    assert action.start()  # what a worker killed right after its claim leaves behind
    assert scaling.run_action(action.pk) == ScalingAction.Status.RUNNING  # the retried task scales nothing

    later = timezone.now() + timedelta(seconds=scaling.ABANDONED_ACTION_SECONDS + 1)
    assert scaling.fail_abandoned(now=timezone.now()) == 0
    assert scaling.fail_abandoned(now=later) == 1

    action.refresh_from_db()
    assert action.status == ScalingAction.Status.FAILED
    assert "check the group's desired capacity" in action.message
    assert ScalingGroup.objects.get(pk=group.pk).desired_capacity == 2
    assert scaling.enqueue_waiting(now=later) == 0
