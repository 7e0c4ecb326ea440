"""What a freshly migrated database needs: the `*` row and the scheduled jobs."""

from django.db import transaction

from partners.models import DEFAULTS_CLIENT_ID, UploadLimitRow

RESUME_SCHEDULE_NAME = "partners: resume pauses whose time has come"
OVERRIDES_SCHEDULE_NAME = "partners: remind and revert expiring overrides"
LOAD_SCHEDULE_NAME = "partners: load-coupled limits"


def after_migrate(using: str = "default", **kwargs) -> None:
    ensure_role_groups()
    ensure_defaults_row(using)
    ensure_schedules()


def ensure_role_groups() -> None:
    """The ops group may manage users and groups in the admin (who is ops, who is engineer)."""
    from django.contrib.auth.models import Group, Permission

    from dashboard.roles import ENGINEERS_GROUP, OPS_GROUP

    ops, _ = Group.objects.get_or_create(name=OPS_GROUP)
    ops.permissions.add(*Permission.objects.filter(content_type__app_label="auth"))
    Group.objects.get_or_create(name=ENGINEERS_GROUP)


def ensure_defaults_row(using: str = "default") -> None:
    from partners import publisher

    with transaction.atomic(using=using):
        if not UploadLimitRow.objects.using(using).filter(client_id=DEFAULTS_CLIENT_ID).exists():
            publisher.publish_defaults()


# Every-minute jobs of the partners app: schedule name -> task.
EVERY_MINUTE_TASKS = {
    RESUME_SCHEDULE_NAME: "partners.tasks.resume_due_pauses",
    OVERRIDES_SCHEDULE_NAME: "partners.tasks.run_expiring_overrides",
    LOAD_SCHEDULE_NAME: "partners.tasks.run_load_coupled_limits",
}


def ensure_schedules() -> None:
    from django_q.models import Schedule

    for name, func in EVERY_MINUTE_TASKS.items():
        Schedule.objects.update_or_create(
            name=name,
            defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": 1, "repeats": -1},
        )
