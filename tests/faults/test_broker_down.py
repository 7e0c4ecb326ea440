"""The django-q2 broker (Redis in production) down: a real redis-server on 127.0.0.1, stopped and
started. A scaling confirmed meanwhile is saved and the user is told it waits; nothing is lost:
the policy task's sweeper queues it when Redis is back, and the worker scales exactly once.
"""

import shutil
import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q import brokers, signing

from fleet import scaling
from fleet.models import ScalingAction, ScalingGroup
from tests.factories import make_local_group, scale_post

pytestmark = pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed")


def _run_queued_tasks() -> int:
    """What a worker does: take each queued task off Redis and run it."""
    broker = brokers.get_broker()
    ran = 0
    while tasks := broker.dequeue():
        for task_id, payload in tasks:
            task = signing.SignedPackage.loads(payload)
            module, name = task["func"].rsplit(".", 1)
            getattr(__import__(module, fromlist=[name]), name)(*task["args"])
            broker.acknowledge(task_id)
            ran += 1
    return ran


def test_a_scaling_confirmed_while_redis_is_down_is_kept_and_runs_once_when_it_is_back(redis_broker, login, ops_user):
    group = make_local_group("sim-fleet", desired=2, cooldown_seconds=0)
    redis_broker.stop()

    response = login(ops_user).post(reverse("fleet:scale", args=[group.name]), scale_post(3), follow=True)

    assert response.status_code == 200
    assert "task queue is unreachable; it will start when the queue is back" in response.content.decode()
    action = ScalingAction.objects.get()
    assert action.status == ScalingAction.Status.REQUESTED
    assert ScalingGroup.objects.get(pk=group.pk).desired_capacity == 2

    redis_broker.start()
    later = timezone.now() + timedelta(seconds=scaling.WAITING_ACTION_REQUEUE_SECONDS + 1)
    assert scaling.enqueue_waiting(now=later) == 1
    assert _run_queued_tasks() == 1

    action.refresh_from_db()
    assert action.status == ScalingAction.Status.SUCCEEDED
    assert ScalingGroup.objects.get(pk=group.pk).desired_capacity == 3
    # A second sweep finds nothing waiting: the worker scaled once.
    assert scaling.enqueue_waiting(now=later) == 0


def test_with_redis_up_the_action_is_queued_at_once_and_a_repeat_message_scales_nothing(redis_broker, ops_user):
    group = make_local_group("sim-fleet", desired=2, cooldown_seconds=0)
    action, _ = scaling.request_scaling(group, ops_user, 2, 4, "import", idempotency_key=uuid.uuid4())
    assert scaling.enqueue(action) and scaling.enqueue(action)  # e.g. the sweeper raced the first message
    assert _run_queued_tasks() == 2
    action.refresh_from_db()
    assert action.status == ScalingAction.Status.SUCCEEDED
    assert ScalingGroup.objects.get(pk=group.pk).desired_capacity == 4
