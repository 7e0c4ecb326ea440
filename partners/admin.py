"""The admin shows partners, the overrides and the published table read-only.

Partners and limits change only through the dashboard's forms, which audit and publish
every change in one transaction; an admin edit would bypass both.
"""

from django.contrib import admin

from core.admin import ReadOnlyAdmin
from partners.models import FleetSettings, Override, Partner, UploadLimitRow


@admin.register(Partner)
class PartnerAdmin(ReadOnlyAdmin):
    list_display = ["name", "client_id", "priority", "requests_per_minute", "max_concurrent_uploads", "revision"]
    search_fields = ["name", "client_id", "slug"]


@admin.register(FleetSettings)
class FleetSettingsAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "revision"]


@admin.register(UploadLimitRow)
class UploadLimitRowAdmin(ReadOnlyAdmin):
    list_display = [
        "client_id",
        "version",
        "paused",
        "requests_per_minute",
        "max_concurrent_uploads",
        "live_server_count",
        "updated_at",
    ]
    ordering = ["-version"]


@admin.register(Override)
class OverrideAdmin(ReadOnlyAdmin):
    list_display = ["id", "partner", "kind", "state", "ends_at", "created_by", "reminder_sent_at"]
    list_filter = ["kind", "state"]
