"""AWS accepting the connection and never answering: a real socket on 127.0.0.1 that accepts
and stays silent. The bounded read timeout ends the call; the failure is recorded in words and
nothing is half-done (no cooldown started, no metric rows)."""

import socket
import threading

import pytest

from dashboard.models import ScalingAction
from monitoring import collectors
from monitoring.models import MetricSource
from tests.dashboard.test_scaling_actions import make_aws_group, scale
from tests.monitoring.test_collectors import fake_aws_environment, make_source  # noqa: F401 - fixture


@pytest.fixture
def silent_aws(settings, fake_aws_environment):  # noqa: F811
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = []
    stop = threading.Event()

    def accept_and_say_nothing():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept_and_say_nothing, daemon=True)
    thread.start()
    settings.AWS_ENDPOINT_URL = f"http://127.0.0.1:{listener.getsockname()[1]}"
    settings.AWS_READ_TIMEOUT_SECONDS = 0.5
    settings.AWS_MAX_ATTEMPTS = 1
    yield accepted
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def test_a_scaling_against_a_silent_aws_fails_in_words_and_starts_no_cooldown(silent_aws, ops_user):
    group = make_aws_group()
    action = scale(group, ops_user, 3, from_capacity=2)
    assert action.status == ScalingAction.Status.FAILED
    assert "timed out after 0.5 s talking to Auto Scaling" in action.message
    assert "check the group's desired capacity" in action.message
    group.refresh_from_db()
    assert group.last_scaled_at is None
    assert silent_aws, "the request reached the silent endpoint"


def test_a_collector_against_a_silent_aws_records_the_timeout_and_keeps_going(db, silent_aws, now_minute):
    source = make_source(MetricSource.Kind.SQS_QUEUE, "transcode-jobs")
    assert collectors.collect_all(now_minute) == {"ok": 0, "failed": 1}
    source.refresh_from_db()
    assert source.last_error.startswith("timed out after 0.5 s talking to SQS")


@pytest.fixture
def now_minute():
    from django.utils import timezone
    return timezone.now().replace(second=0, microsecond=0)
