"""A process running the scaling task really killed (SIGKILL) while its call to AWS is in
flight: the action is not lost (the sweeper fails it in words), and running the task again, as
a retried message would, sends AWS nothing more. PostgreSQL only: the worker process must see
the test's committed rows."""

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from dashboard import scaling
from dashboard.models import ScalingAction
from tests.conftest import postgres_only
from tests.dashboard.test_scaling_actions import make_aws_group
from tests.faults.test_aws_hangs import silent_aws  # noqa: F401 - fixture
from tests.monitoring.test_collectors import fake_aws_environment  # noqa: F401 - fixture

REPO = Path(__file__).resolve().parents[2]


def start_worker_process(code: str, **environment: str) -> subprocess.Popen:
    """A worker process of its own (a process group, for killpg) running `code` against the
    test's database."""
    test_database = connection.settings_dict["NAME"]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "dashboard.settings_test",
           "DATABASE_URL": os.environ["DATABASE_URL"].rsplit("/", 1)[0] + f"/{test_database}", **environment}
    return subprocess.Popen([sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=REPO, env=env,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start_worker(action_id: int, endpoint: str) -> subprocess.Popen:
    """What a django-q2 worker runs for the message: scaling.run_action(action_id)."""
    return start_worker_process(f"from dashboard import scaling; print(scaling.run_action({action_id}))",
                                AWS_ENDPOINT_URL=endpoint, AWS_READ_TIMEOUT_SECONDS="300", AWS_MAX_ATTEMPTS="1")


def wait_until(predicate, timeout_seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_call_neither_loses_the_action_nor_scales_twice(silent_aws, settings,  # noqa: F811
                                                                              ops_user):
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

    later = timezone.now() + timedelta(seconds=scaling.ABANDONED_ACTION_SECONDS + 1)
    assert scaling.fail_abandoned(now=later) == 1
    action.refresh_from_db()
    assert action.status == ScalingAction.Status.FAILED
    assert "check the group's desired capacity" in action.message
