from datetime import UTC

from django.apps import AppConfig
from django.db.models.signals import post_migrate

WEEKLY_SUMMARY_SCHEDULE_NAME = "dashboard: weekly summary email to ops"


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Upload Ops"

    def ready(self) -> None:
        from core.audit import register_actions
        from dashboard.models import OperationsAudit

        register_actions(OperationsAudit)
        post_migrate.connect(_after_migrate, sender=self)


def _next_monday_morning():
    from datetime import datetime, time, timedelta

    today = datetime.now(UTC).date()
    return datetime.combine(today + timedelta(days=7 - today.weekday()), time(7), tzinfo=UTC)


def _after_migrate(**kwargs) -> None:
    from django_q.models import Schedule

    from core import schedules

    # Mondays at 07:00 UTC, for the week that just ended; the claim makes a second run a no-op.
    schedules.ensure(
        {
            WEEKLY_SUMMARY_SCHEDULE_NAME: {
                "func": "dashboard.tasks.send_weekly_summary",
                "schedule_type": Schedule.WEEKLY,
                "repeats": -1,
                "next_run": _next_monday_morning(),
            }
        }
    )
