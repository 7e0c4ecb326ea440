"""A process running the scaling task really killed (SIGKILL) while its call to AWS is in
flight: the action is not lost (the sweeper keeps it until AWS can say what happened), and
running the task again, as a retried message would, sends AWS nothing more. PostgreSQL only: the worker process must see
the test's committed rows."""

import os
import signal
import subprocess
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from fleet import scaling
from fleet.models import ScalingAction
from tests.factories import make_aws_group, postgres_only, start_worker_process, wait_until


def start_worker(action_id: int, endpoint: str) -> subprocess.Popen:
    """What a django-q2 worker runs for the message: scaling.run_action(action_id)."""
    return start_worker_process(
        f"from fleet import scaling; print(scaling.run_action({action_id}))",
        AWS_ENDPOINT_URL=endpoint,
        AWS_READ_TIMEOUT_SECONDS="300",
        AWS_MAX_ATTEMPTS="1",
    )


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_call_neither_loses_the_action_nor_scales_twice(silent_aws, settings, ops_user):
    group = make_aws_group(cooldown_seconds=0)
    action, _ = scaling.request_scaling(group, ops_user, 2, 3, "import", idempotency_key=uuid.uuid4())
    endpoint = settings.AWS_ENDPOINT_URL

    worker = start_worker(action.pk, endpoint)
    try:
        assert wait_until(lambda: len(silent_aws) == 1 or worker.poll() is not None), "AWS was never called"
        assert worker.poll() is None, worker.communicate()
        os.killpg(worker.pid, signal.SIGKILL)  # the worker dies with the request in flight
    finally:
        worker.wait(timeout=30)
    action.refresh_from_db()
    assert action.status == ScalingAction.Status.RUNNING

    retried = start_worker(action.pk, endpoint)  # the broker hands the message out again
    out, err = retried.communicate(timeout=120)
    assert retried.returncode == 0, err[-2000:]
    assert out.strip().splitlines()[-1] == ScalingAction.Status.RUNNING
    assert len(silent_aws) == 1, "the retried task called AWS again"

    # AWS still does not answer: the sweeper cannot tell whether the change landed, so it waits.
    later = timezone.now() + timedelta(seconds=scaling.ABANDONED_ACTION_SECONDS + 1)
    assert scaling.recover_abandoned(now=later) == 0
    action.refresh_from_db()
    assert action.status == ScalingAction.Status.RUNNING
