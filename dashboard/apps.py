from django.apps import AppConfig
from django.db.models.signals import post_migrate


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Upload Ops"

    def ready(self) -> None:
        post_migrate.connect(_after_migrate, sender=self)


WEEKLY_SUMMARY_SCHEDULE_NAME = "dashboard: weekly summary email to ops"


def _next_monday_morning():
    from datetime import datetime, time, timedelta, timezone

    today = datetime.now(timezone.utc).date()
    return datetime.combine(today + timedelta(days=7 - today.weekday()), time(7), tzinfo=timezone.utc)


def _after_migrate(**kwargs) -> None:
    from django.conf import settings
    from django_q.models import Schedule

    from dashboard.models import ScalingGroup

    Schedule.objects.update_or_create(name="dashboard: evaluate scaling policies", defaults={
        "func": "dashboard.tasks.evaluate_scaling_policies", "schedule_type": Schedule.MINUTES,
        "minutes": 1, "repeats": -1})
    # Mondays at 07:00 UTC, for the week that just ended; the claim makes a second run a no-op.
    Schedule.objects.update_or_create(name=WEEKLY_SUMMARY_SCHEDULE_NAME, defaults={
        "func": "dashboard.tasks.send_weekly_summary", "schedule_type": Schedule.WEEKLY, "repeats": -1,
        "next_run": _next_monday_morning()})
    # The local simulated fleet, so a fresh install has a group to look at; AWS groups are added
    # in the admin. Never touches a group that exists.
    if not ScalingGroup.objects.exists():
        ScalingGroup.objects.create(name="local-fleet", backend=ScalingGroup.Backend.LOCAL,
                                    desired_capacity=settings.FLEET_CONFIGURED_SERVER_COUNT)
