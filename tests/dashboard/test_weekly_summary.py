"""The weekly summary email to ops: last week's figures and the open risks, sent once."""

from datetime import UTC, datetime, time, timedelta
from unittest import mock

import pytest
from django.core import mail
from django.utils import timezone as django_timezone
from django_q.models import Schedule

from alerting.models import Alert, AlertRule, AlertState
from core.mail import TransportError
from core.roles import OPS_GROUP
from dashboard import weekly
from dashboard.models import WeeklySummary
from fleet.models import ScalingAction
from monitoring.models import Rollup
from partners import changes
from tests.factories import make_local_group, make_partner, make_user

pytestmark = pytest.mark.django_db


def next_monday_morning():
    today = django_timezone.now().date()
    return datetime.combine(today + timedelta(days=7 - today.weekday()), time(7), tzinfo=UTC)


# The summary sent next Monday morning covers the week running now: the changes the test makes
# through partners.changes (audited at the real time) fall in it.
MONDAY = next_monday_morning()
WEEK_START = MONDAY.date() - timedelta(days=7)
IN_WEEK = MONDAY - timedelta(days=3)


def fleet_cpu(minute, percent):
    Rollup.objects.create(
        metric="cpu_percent",
        subject="fleet",
        resolution_seconds=60,
        bucket_start=minute,
        sample_count=1,
        total=percent,
        minimum=percent,
        maximum=percent,
    )


@pytest.fixture
def last_week(ops_user, partner_a):
    fleet_cpu(IN_WEEK, 87.5)
    fleet_cpu(IN_WEEK + timedelta(minutes=1), 40)
    fleet_cpu(MONDAY + timedelta(minutes=1), 99)  # this week: not counted
    rule = AlertRule.objects.create(slug="cpu-risk", name="CPU", metric="cpu_percent", subject="fleet", threshold=80)
    Alert.objects.create(
        rule=rule,
        subject="fleet",
        state=AlertState.RESOLVED,
        pending_since=IN_WEEK,
        fired_at=IN_WEEK,
        evaluated_at=IN_WEEK,
        closed_at=IN_WEEK + timedelta(minutes=5),
    )
    group = make_local_group("weekly-fleet")
    for status in (ScalingAction.Status.SUCCEEDED, ScalingAction.Status.FAILED):
        ScalingAction.objects.create(
            group=group,
            requested_by_name="policy",
            from_capacity=2,
            to_capacity=3,
            reason="CPU high",
            idempotency_key=__import__("uuid").uuid4(),
            status=status,
            requested_at=IN_WEEK,
        )
    changes.change_limits(partner_a, ops_user, {"max_concurrent_uploads": 10}, "lower", None)
    changes.pause(partner_a, ops_user, "incident", None)
    changes.resume(partner_a, ops_user, "over")  # a resume is no pause
    make_partner("Open Archive", ops_user)  # an open risk: a partner without limits


def test_the_summary_goes_to_ops_once_with_the_figures(last_week, ops_user):
    make_user("second-ops", OPS_GROUP)
    assert weekly.send_weekly_summary(MONDAY) is True
    assert weekly.send_weekly_summary(MONDAY + timedelta(minutes=5)) is False, "a second run sends nothing"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert sorted(message.to) == ["olivia-ops@example.org", "second-ops@example.org"]
    assert message.subject.startswith(f"Upload Ops week of {WEEK_START.isoformat()}: peak CPU 88 %, 1 alert,")
    body = message.body
    assert "Peak fleet CPU: 87.5 %" in body
    assert "Alerts fired: 1" in body
    assert "Scaling actions: 2 (1 succeeded)" in body
    assert "Limit changes: 1" in body and "Pauses: 1" in body
    assert "A partner without limits: No limit at all on: Open Archive." in body
    assert "/risk/" in body
    assert WeeklySummary.objects.get().week_start == WEEK_START


def test_users_outside_ops_or_without_an_address_get_nothing(last_week, engineer):
    make_user("quiet-ops", OPS_GROUP).__class__.objects.filter(username="quiet-ops").update(email="")
    weekly.send_weekly_summary(MONDAY)
    assert mail.outbox[0].to == ["olivia-ops@example.org"]


def test_a_failure_that_may_pass_is_retried_by_the_next_run(last_week):
    with mock.patch.object(weekly, "send_email", side_effect=TransportError("SMTP down")):
        assert weekly.send_weekly_summary(MONDAY) is False
    assert not WeeklySummary.objects.exists()
    assert weekly.send_weekly_summary(MONDAY) is True
    assert len(mail.outbox) == 1


def test_the_summary_is_scheduled_weekly():
    schedule = Schedule.objects.get(func="dashboard.tasks.send_weekly_summary")
    assert schedule.schedule_type == Schedule.WEEKLY and schedule.repeats == -1
    assert schedule.next_run.weekday() == 0 and schedule.next_run.hour == 7
