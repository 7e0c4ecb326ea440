"""The evaluation job is scheduled every minute by django-q2 and runs as a thin task."""

import pytest
from django.core import mail
from django_q.models import Schedule

from alerting import tasks
from alerting.models import Alert
from tests.factories import sample

pytestmark = pytest.mark.django_db


def test_alert_evaluation_is_scheduled_every_minute():
    schedule = Schedule.objects.get(name="alerting: evaluate alerts")
    assert schedule.func == "alerting.tasks.evaluate_alerts"
    assert schedule.schedule_type == Schedule.MINUTES and schedule.minutes == 1


def test_the_task_evaluates_with_the_current_time(engineer):
    from django.utils import timezone

    sample("timed_out", "fleet", timezone.now(), 5)
    summary = tasks.evaluate_alerts()
    assert summary["pending"] >= 1
    assert Alert.objects.filter(rule__slug="uploads-timing-out", state="pending").exists()
    assert not mail.outbox
