from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_migrate


class CoreConfig(AppConfig):
    default = True
    name = "core"
    verbose_name = "Audit log and roles"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from core.audit import register_actions
        from core.middleware import session_fresh_at_login
        from core.models import AccessAudit

        register_actions(AccessAudit)
        user_logged_in.connect(session_fresh_at_login, dispatch_uid="core.session_fresh_at_login")
        post_migrate.connect(ensure_role_groups, sender=self)


class OpsAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with core.admin_site.OpsAdminSite as admin.site (open to ops)."""

    default = False
    default_site = "core.admin_site.OpsAdminSite"


def ensure_role_groups(**kwargs) -> None:
    """The groups the roles are made of (core.roles), holding no Django permission.

    Roles are group names, checked by core.roles; a permission in a role group would open the
    admin's user, group or django-q schedule forms to everyone in it (and a schedule runs
    code on the worker host). Earlier versions gave the ops group every `auth` permission:
    each migrate takes them away again.
    """
    from django.contrib.auth.models import Group

    from core.roles import ENGINEERS_GROUP, OPS_GROUP

    for name in (OPS_GROUP, ENGINEERS_GROUP):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.clear()
