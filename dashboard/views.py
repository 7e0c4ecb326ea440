from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from partners.models import FleetSettings, UploadLimitRow
from partners.publisher import live_server_count
from partners.access import visible_partners


@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    partners = visible_partners(request.user)
    return render(request, "dashboard/overview.html", {
        "fleet": FleetSettings.load(),
        "partner_count": partners.count(),
        "paused_partners": partners.filter(paused=True),
        "unlimited_partners": partners.filter(
            requests_per_minute=None, max_concurrent_uploads=None, max_bytes_in_flight=None,
            daily_upload_bytes=None,
        ),
        "config_version": UploadLimitRow.objects.aggregate(version=Max("version"))["version"],
        "live_server_count": live_server_count(),
    })
