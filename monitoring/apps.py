from django.apps import AppConfig
from django.db.models.signals import post_migrate


class MonitoringConfig(AppConfig):
    name = "monitoring"

    def ready(self) -> None:
        post_migrate.connect(_after_migrate, sender=self)


def _after_migrate(**kwargs) -> None:
    from django_q.models import Schedule

    every_minute = {"schedule_type": Schedule.MINUTES, "minutes": 1, "repeats": -1}
    schedules = {
        "monitoring: roll up metrics": {"func": "monitoring.tasks.roll_up_metrics", **every_minute},
        "monitoring: collect CloudWatch and SQS": {"func": "monitoring.tasks.collect_metrics", **every_minute},
        "monitoring: count live servers": {"func": "monitoring.tasks.sync_live_servers", **every_minute},
        "monitoring: evaluate alerts": {"func": "monitoring.tasks.evaluate_alerts", **every_minute},
        "monitoring: purge expired metrics": {"func": "monitoring.tasks.purge_expired_metrics",
                                              "schedule_type": Schedule.HOURLY, "repeats": -1},
    }
    for name, fields in schedules.items():
        Schedule.objects.update_or_create(name=name, defaults=fields)
    from monitoring.collectors import sync_sources_from_settings

    sync_sources_from_settings()
    from monitoring.alerting.rules import seed_default_rules

    seed_default_rules()
