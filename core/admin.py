"""The admin for ops: the audit log read-only; users, groups and the worker's schedules and
tasks changed by superusers only.

A django-q schedule names a function and its arguments and the worker runs it, and a user or
group edit can grant superuser or the schedule permissions: whoever may change those may run
code on the worker host. So ops (and any staff account) only read them here, whatever
permissions a group holds. Ops manage people on the dashboard's People page instead (who is
ops or engineer, audited: core/people.py) and name a partner's managers in its settings form.
"""

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django_q.models import Failure, OrmQ, Schedule, Success

from core import roles
from core.models import AuditEntry


class ReadOnlyAdmin(admin.ModelAdmin):
    """What ops may read in the admin but change only through the dashboard's audited forms."""

    def has_module_permission(self, request) -> bool:
        return roles.is_ops(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return roles.is_ops(request.user)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor_name", "action", "subject", "reason"]
    list_filter = ["action"]
    search_fields = ["actor_name", "subject", "reason"]


class SuperuserChangesOnly:
    """Mixed into another app's ModelAdmin: ops read, only a superuser adds, changes, deletes
    or runs an action (django-q's "resubmit" runs a stored task again)."""

    def has_module_permission(self, request) -> bool:
        return request.user.is_superuser or roles.is_ops(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser or roles.is_ops(request.user)

    def has_add_permission(self, request, *args) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def get_actions(self, request):
        return super().get_actions(request) if request.user.is_superuser else {}


# Registered by django.contrib.auth, django-q and axes (all before core in INSTALLED_APPS).
SUPERUSER_ONLY_MODELS = [User, Group, Schedule, Success, Failure, OrmQ, AccessAttempt, AccessLog, AccessFailureLog]


def _restrict_to_superusers(model) -> None:
    if not admin.site.is_registered(model):
        return
    original = type(admin.site.get_model_admin(model))
    admin.site.unregister(model)
    admin.site.register(model, type(f"SuperuserOnly{original.__name__}", (SuperuserChangesOnly, original), {}))


for _model in SUPERUSER_ONLY_MODELS:
    _restrict_to_superusers(_model)
