"""AWS accepting the connection and never answering: a real socket on 127.0.0.1 that accepts
and stays silent. The bounded read timeout ends the call; the failure is recorded in words and
nothing is half-done (no cooldown started, no metric rows)."""

from django.utils import timezone

from fleet.models import ScalingAction
from monitoring import collectors
from monitoring.models import MetricSource
from tests.factories import make_aws_group, make_source, scale


def test_a_scaling_against_a_silent_aws_fails_in_words_and_starts_no_cooldown(silent_aws, ops_user):
    group = make_aws_group()
    action = scale(group, ops_user, 3, from_capacity=2)
    assert action.status == ScalingAction.Status.FAILED
    assert "timed out after 0.5 s talking to Auto Scaling" in action.message
    assert "check the group's desired capacity" in action.message
    group.refresh_from_db()
    assert group.last_scaled_at is None
    assert silent_aws, "the request reached the silent endpoint"


def test_a_collector_against_a_silent_aws_records_the_timeout_and_keeps_going(db, silent_aws):
    now_minute = timezone.now().replace(second=0, microsecond=0)
    source = make_source(MetricSource.Kind.SQS_QUEUE, "transcode-jobs")
    assert collectors.collect_all(now_minute) == {"ok": 0, "failed": 1}
    source.refresh_from_db()
    assert source.last_error.startswith("timed out after 0.5 s talking to SQS")
