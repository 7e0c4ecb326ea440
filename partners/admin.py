"""The admin shows partners, the audit log and the published table read-only.

Partners and limits change only through the dashboard's forms, which audit and publish
every change in one transaction; an admin edit would bypass both.
"""

from django.contrib import admin

from dashboard import roles
from partners.models import AuditEntry, ExpiringOverride, FleetSettings, Partner, UploadLimitRow


class ReadOnlyAdmin(admin.ModelAdmin):
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


@admin.register(Partner)
class PartnerAdmin(ReadOnlyAdmin):
    list_display = ["name", "client_id", "priority", "paused", "requests_per_minute",
                    "max_concurrent_uploads", "revision"]
    search_fields = ["name", "client_id", "slug"]


@admin.register(FleetSettings)
class FleetSettingsAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "all_partners_paused", "revision"]


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor_name", "action", "subject", "reason"]
    list_filter = ["action"]
    search_fields = ["actor_name", "subject", "reason"]


@admin.register(UploadLimitRow)
class UploadLimitRowAdmin(ReadOnlyAdmin):
    list_display = ["client_id", "version", "paused", "requests_per_minute",
                    "max_concurrent_uploads", "live_server_count", "updated_at"]
    ordering = ["-version"]


@admin.register(ExpiringOverride)
class ExpiringOverrideAdmin(ReadOnlyAdmin):
    list_display = ["id", "partner", "kind", "state", "ends_at", "created_by", "reminder_sent_at"]
    list_filter = ["kind", "state"]
