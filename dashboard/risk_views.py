"""The risk page at /risk/: headroom, over-commitment and the risk register (dashboard.risk)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from dashboard import risk
from dashboard.fleet_views import _require_fleet_reader


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
    })
