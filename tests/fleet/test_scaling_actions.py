"""Scaling actions on the local backend: bounds, cooldown, idempotency, the audit trail."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import AuditEntry
from fleet import scaling
from fleet.models import ScalingAction, ScalingAudit, ScalingGroup
from tests.factories import make_local_group, scale

Status = ScalingAction.Status
pytestmark = pytest.mark.django_db


def desired(group: ScalingGroup) -> int:
    group.refresh_from_db()
    return group.desired_capacity


def test_it_scales_a_local_group_within_its_bounds(ops_user):
    group = make_local_group(desired=2)
    action = scale(group, ops_user, 3)
    assert action.status == Status.SUCCEEDED
    assert action.message == "Desired capacity of sim-fleet set from 2 to 3."
    assert action.started_at and action.finished_at
    assert desired(group) == 3


def test_the_request_and_its_audit_entry_are_recorded_together(ops_user):
    group = make_local_group(desired=2)
    scale(group, ops_user, 4, reason="TheirStory backlog")
    entry = AuditEntry.objects.get(action=ScalingAudit.SCALING_REQUESTED)
    assert (entry.actor, entry.subject, entry.reason) == (ops_user, "scaling group sim-fleet", "TheirStory backlog")
    assert (entry.before, entry.after) == ({"desired_capacity": 2}, {"desired_capacity": 4})


@pytest.mark.parametrize(
    "to_capacity,words", [(6, "6 is above the group's maximum of 5."), (0, "0 is below the group's minimum of 1.")]
)
def test_it_refuses_beyond_the_bounds_without_touching_the_group(ops_user, to_capacity, words):
    group = make_local_group(desired=2)
    action = scale(group, ops_user, to_capacity)
    assert action.status == Status.REFUSED
    assert action.message == f"Refused: {words} Nothing was changed."
    assert desired(group) == 2
    assert ScalingGroup.objects.get(pk=group.pk).last_scaled_at is None


def test_a_second_scaling_within_the_cooldown_is_refused(ops_user):
    group = make_local_group(desired=2, cooldown_seconds=300)
    assert scale(group, ops_user, 3).status == Status.SUCCEEDED
    second = scale(group, ops_user, 4)
    assert second.status == Status.REFUSED
    assert "cooldown lasts until" in second.message and "Nothing was changed" in second.message
    assert desired(group) == 3


def test_a_scaling_after_the_cooldown_goes_through(ops_user):
    group = make_local_group(desired=2, cooldown_seconds=300)
    scale(group, ops_user, 3)
    ScalingGroup.objects.filter(pk=group.pk).update(last_scaled_at=timezone.now() - timedelta(seconds=301))
    assert scale(group, ops_user, 4).status == Status.SUCCEEDED
    assert desired(group) == 4


def test_a_double_submit_with_the_same_key_scales_once(ops_user):
    group = make_local_group(desired=2, cooldown_seconds=0)
    key = uuid.uuid4()
    first = scale(group, ops_user, 3, from_capacity=2, key=key)
    second = scale(group, ops_user, 3, from_capacity=2, key=key)
    assert first.pk == second.pk
    assert ScalingAction.objects.count() == 1
    assert AuditEntry.objects.filter(action=ScalingAudit.SCALING_REQUESTED).count() == 1
    assert desired(group) == 3


def test_a_retried_task_never_scales_twice(ops_user):
    group = make_local_group(desired=2, cooldown_seconds=0)
    action = scale(group, ops_user, 3)
    ScalingGroup.objects.filter(pk=group.pk).update(desired_capacity=2)  # as if someone else undid it
    assert scaling.run_action(action.pk) == Status.SUCCEEDED
    assert desired(group) == 2


def test_it_refuses_when_the_group_changed_since_the_confirmation(ops_user):
    group = make_local_group(desired=2, cooldown_seconds=0)
    action = scale(group, ops_user, 4, from_capacity=3)
    assert action.status == Status.REFUSED
    assert action.message.startswith("Refused: sim-fleet is now at 2, not 3 as when this was requested.")
    assert desired(group) == 2
    assert ScalingGroup.objects.get(pk=group.pk).last_scaled_at is None, "a refusal starts no cooldown"


def test_transitions_only_move_forward():
    group = make_local_group()
    action = ScalingAction.objects.create(
        group=group,
        requested_by_name="policy",
        from_capacity=2,
        to_capacity=3,
        reason="r",
        idempotency_key=uuid.uuid4(),
    )
    assert not action.succeed(), "a requested action cannot succeed before it runs"
    assert action.start() and not action.start()
    assert action.fail("boom") and not action.refuse("late")
    action.refresh_from_db()
    assert (action.status, action.message) == (Status.FAILED, "boom")


def test_in_service_counts_live_upload_servers_of_a_local_group_or_else_desired():
    from fleet.backends import LocalBackend
    from monitoring.models import UploadServer

    group = make_local_group(desired=3, server_name_prefix="sim-")
    assert LocalBackend().describe(group).in_service == 3
    now = timezone.now()
    for index, silent_after in enumerate([now + timedelta(seconds=15), now - timedelta(seconds=1)]):
        UploadServer.objects.create(
            name=f"sim-{index}",
            token_hash=str(index) * 64,
            token_prefix="x",
            silent_after=silent_after,
            last_cpu_percent=40.0 + index,
        )
    UploadServer.objects.create(
        name="other-1", token_hash="z" * 64, token_prefix="x", silent_after=now + timedelta(seconds=15)
    )
    state = LocalBackend().describe(group)
    assert (state.in_service, state.pending) == (1, 2)
    assert [(m.name, m.state, m.cpu_percent) for m in state.members] == [
        ("sim-0", "live", 40.0),
        ("sim-1", "silent", 41.0),
    ]
