from django.apps import AppConfig
from django.db.models.signals import post_migrate

LOAD_SCHEDULE_NAME = "fleet: load-coupled limits"


class FleetConfig(AppConfig):
    name = "fleet"
    verbose_name = "Fleet and scaling"

    def ready(self) -> None:
        from core.audit import register_actions
        from fleet.models import ScalingAudit

        register_actions(ScalingAudit)
        post_migrate.connect(_after_migrate, sender=self)


def _after_migrate(**kwargs) -> None:
    from django.conf import settings

    from core import schedules
    from fleet.models import ScalingGroup

    schedules.ensure(
        {
            "fleet: evaluate scaling policies": schedules.every_minute("fleet.tasks.evaluate_scaling_policies"),
            LOAD_SCHEDULE_NAME: schedules.every_minute("fleet.tasks.run_load_coupled_limits"),
            "fleet: mark terminated servers gone": schedules.every_minute("fleet.tasks.mark_terminated_servers_gone"),
        }
    )
    # The local simulated fleet, so a fresh install has a group to look at; AWS groups are added
    # in the admin. Never touches a group that exists.
    if not ScalingGroup.objects.exists():
        ScalingGroup.objects.create(
            name="local-fleet",
            backend=ScalingGroup.Backend.LOCAL,
            desired_capacity=settings.FLEET_CONFIGURED_SERVER_COUNT,
        )
