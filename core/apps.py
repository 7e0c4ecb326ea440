from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Audit log and roles"

    def ready(self) -> None:
        post_migrate.connect(ensure_role_groups, sender=self)


def ensure_role_groups(**kwargs) -> None:
    """The groups the roles are made of (core.roles). The ops group may manage users and groups in
    the admin (who is ops, who is engineer)."""
    from django.contrib.auth.models import Group, Permission

    from core.roles import ENGINEERS_GROUP, OPS_GROUP

    ops, _ = Group.objects.get_or_create(name=OPS_GROUP)
    ops.permissions.add(*Permission.objects.filter(content_type__app_label="auth"))
    Group.objects.get_or_create(name=ENGINEERS_GROUP)
