from django.apps import AppConfig
from django.db.models.signals import post_migrate


class MonitoringConfig(AppConfig):
    name = "monitoring"

    def ready(self) -> None:
        from core.audit import register_actions
        from monitoring.models import ServerAudit

        register_actions(ServerAudit)
        post_migrate.connect(_after_migrate, sender=self)


def _after_migrate(**kwargs) -> None:
    from core import schedules
    from monitoring.collectors import sync_sources_from_settings

    schedules.ensure(
        {
            "monitoring: roll up metrics": schedules.every_minute("monitoring.tasks.roll_up_metrics"),
            "monitoring: collect CloudWatch and SQS": schedules.every_minute("monitoring.tasks.collect_metrics"),
            "monitoring: count live servers": schedules.every_minute("monitoring.tasks.count_live_servers"),
            "monitoring: purge expired metrics": schedules.hourly("monitoring.tasks.purge_expired_metrics"),
        }
    )
    sync_sources_from_settings()
