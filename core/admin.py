"""The audit log in the admin: read-only, for ops."""

from django.contrib import admin

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
