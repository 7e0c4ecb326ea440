"""The risk page at /risk/: headroom, over-commitment, the risk register (dashboard.risk)
and the timeline of what changed (dashboard.timeline)."""

from datetime import timedelta

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from dashboard import risk, timeline
from dashboard.fleet_views import _require_fleet_reader

# The week the weekly summary covers, and then some: what led to today's state.
TIMELINE_DAYS = 7


@require_GET
def risk_page(request: HttpRequest) -> HttpResponse:
    # Fleet-wide like the fleet page: ops and engineers; a partner manager gets 403, as there.
    _require_fleet_reader(request)
    now = timezone.now()
    model = risk.load_model()
    entries = risk.register(now, model)
    return render(request, "dashboard/risk.html", {
        "headroom": risk.headroom(now, model),
        "overcommitment": risk.overcommitment(now, model),
        "entries": entries,
        "open_count": sum(entry.is_open for entry in entries),
        "model": model,
        "now": now,
        "timeline_days": TIMELINE_DAYS,
        "timeline_events": timeline.events(now - timedelta(days=TIMELINE_DAYS), now, user=request.user),
    })
