from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_migrate


class CoreConfig(AppConfig):
    default = True
    name = "core"
    verbose_name = "Audit log and roles"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in
        from django.core.signals import request_finished

        from core import checks  # noqa: F401 - registers the deployment checks
        from core.audit import register_actions
        from core.middleware import session_fresh_at_login
        from core.models import AccessAudit
        from core.request_log import forget_request

        register_actions(AccessAudit)
        user_logged_in.connect(session_fresh_at_login, dispatch_uid="core.session_fresh_at_login")
        request_finished.connect(forget_request, dispatch_uid="core.request_log.forget_request")
        post_migrate.connect(ensure_role_groups, sender=self)
        post_migrate.connect(ensure_heartbeat_schedule, sender=self)


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


def ensure_heartbeat_schedule(**kwargs) -> None:
    """The worker beats every minute; the web processes watch the beat (core.heartbeat)."""
    from core import schedules

    schedules.ensure({"core: worker heartbeat": schedules.every_minute("core.heartbeat.beat")})
