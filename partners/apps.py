from django.apps import AppConfig
from django.db.models.signals import post_migrate

RESUME_SCHEDULE_NAME = "partners: resume pauses whose time has come"
OVERRIDES_SCHEDULE_NAME = "partners: remind and revert expiring overrides"

# Every-minute jobs of the partners app: schedule name -> task.
EVERY_MINUTE_TASKS = {
    RESUME_SCHEDULE_NAME: "partners.tasks.resume_due_pauses",
    OVERRIDES_SCHEDULE_NAME: "partners.tasks.run_expiring_overrides",
}


class PartnersConfig(AppConfig):
    name = "partners"

    def ready(self) -> None:
        from core.audit import register_actions
        from monitoring.signals import live_servers_counted
        from partners.models import PartnerAudit

        register_actions(PartnerAudit)
        post_migrate.connect(_after_migrate, sender=self)
        # Servers come and go: each gate's share of a fleet-wide limit follows the live count.
        live_servers_counted.connect(_publish_live_server_count, dispatch_uid="partners-live-server-count")


def _publish_live_server_count(count: int, **kwargs) -> None:
    from partners import publisher

    publisher.publish_live_server_count(count)


def _after_migrate(**kwargs) -> None:
    """What a freshly migrated database needs: the `*` row and the scheduled jobs."""
    from core import schedules
    from partners import publisher

    publisher.ensure_defaults_row()
    schedules.ensure({name: schedules.every_minute(func) for name, func in EVERY_MINUTE_TASKS.items()})
