from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AlertingConfig(AppConfig):
    name = "alerting"

    def ready(self) -> None:
        from alerting.models import AlertAudit
        from core.audit import register_actions

        register_actions(AlertAudit)
        post_migrate.connect(_after_migrate, sender=self)


def _after_migrate(**kwargs) -> None:
    from alerting.rules import seed_default_rules
    from core import schedules

    schedules.ensure({"alerting: evaluate alerts": schedules.every_minute("alerting.tasks.evaluate_alerts")})
    seed_default_rules()
