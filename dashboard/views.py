"""The pages that combine the other apps: the overview, the risk page with its what-if, and the
audit log (every app writes it; managers see their partners' entries)."""

import time
from datetime import timedelta

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from core import roles
from core.forms import refusal_status, save_change, say_saved
from core.models import AuditEntry
from core.roles import ops_or_engineer_required
from core.units import format_bytes_short
from dashboard import api, risk, timeline
from dashboard.forms import WHAT_IF_LIMITS, ApplyWhatIfForm, AuditFilterForm, WhatIfForm
from fleet_sim.whatif import HORIZON_SECONDS, PARTNER_LIMIT_NAMES, SDK_CONCURRENCY, Projection, project
from monitoring.models import UploadServer
from partners import changes
from partners.access import ceilings_for, may_change, partner_for, visible_partners
from partners.models import FleetSettings, Partner, UploadLimitRow

AUDIT_PAGE_SIZE = 50
# The week the weekly summary covers, and then some: what led to today's state.
TIMELINE_DAYS = 7


@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    if not roles.has_role(request.user):
        return render(request, "dashboard/no_role.html")  # no fleet figures for an account without a role
    partners = visible_partners(request.user)
    return render(
        request,
        "dashboard/overview.html",
        {
            "pauses": api.pauses_for(request.user),
            "partner_count": partners.count(),
            "unlimited_partners": partners.filter(
                requests_per_minute=None,
                max_concurrent_uploads=None,
                max_bytes_in_flight=None,
                daily_upload_bytes=None,
            ),
            "config_version": UploadLimitRow.published_version(),
            "live_server_count": UploadServer.live_count(),
        },
    )


@require_GET
@ops_or_engineer_required
def risk_page(request: HttpRequest) -> HttpResponse:
    """Fleet-wide like the fleet page: ops and engineers; a partner manager gets 403, as there."""
    now = timezone.now()
    model = risk.load_model()
    entries = risk.register(now, model)
    return render(
        request,
        "dashboard/risk.html",
        {
            "headroom": risk.headroom(now, model),
            "overcommitment": risk.overcommitment(now, model),
            "entries": entries,
            "open_count": sum(entry.is_open for entry in entries),
            "model": model,
            "now": now,
            "timeline_days": TIMELINE_DAYS,
            "timeline_events": timeline.events(now - timedelta(days=TIMELINE_DAYS), now, user=request.user),
        },
    )


# The audit log


def _visible_audit_entries(user) -> QuerySet[AuditEntry]:
    entries = AuditEntry.objects.prefetch_related("target")
    if roles.sees_everything(user):
        return entries
    return entries.filter(partner__managers=user)


@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None, partners=visible_partners(request.user))
    entries = _visible_audit_entries(request.user)
    status = 200
    if form.is_bound:
        if form.is_valid():
            entries = _filter_audit(entries, form.cleaned_data)
        else:
            status = 400
            entries = entries.none()
    page = Paginator(entries, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request, "dashboard/audit_log.html", {"form": form, "page": page, "query": query.urlencode()}, status=status
    )


def _filter_audit(entries: QuerySet[AuditEntry], filters: dict) -> QuerySet[AuditEntry]:
    if filters.get("partner"):
        entries = entries.filter(partner=filters["partner"])
    if filters.get("actor"):
        entries = entries.filter(actor_name__icontains=filters["actor"])
    if filters.get("action"):
        entries = entries.filter(action=filters["action"])
    if filters.get("since"):
        entries = entries.filter(created_at__date__gte=filters["since"])
    if filters.get("until"):
        entries = entries.filter(created_at__date__lte=filters["until"])
    return entries


# The what-if at /risk/what-if/: a partner's upload projected on the simulated fleet
# (fleet_sim.whatif), and applying its proposed limits through partners.changes.

APPLY_PREFIX = "apply"
APPLY_REASON = "Apply the what-if's proposed limits"


@require_GET
def what_if(request: HttpRequest) -> HttpResponse:
    partners = visible_partners(request.user)
    if "files" not in request.GET:
        return _render(request, WhatIfForm(initial=_initial(request, partners), partners=partners))
    form = WhatIfForm(request.GET, partners=partners)
    return _render(request, form, status=200 if form.is_valid() else 400)


def _initial(request: HttpRequest, partners) -> dict:
    """The partner's current limits and the servers live now."""
    partner = partners.filter(slug=request.GET.get("partner", "")).first() or partners.first()
    initial = {"servers": UploadServer.live_count()}
    if partner is not None:
        initial.update(partner=partner, **{name: getattr(partner, name) for name in WHAT_IF_LIMITS})
    return initial


@require_POST
def what_if_apply(request: HttpRequest) -> HttpResponse:
    what_if_query = QueryDict(request.POST.get(f"{APPLY_PREFIX}-what_if", ""))
    what_if_form = WhatIfForm(what_if_query, partners=visible_partners(request.user))
    if not what_if_form.is_valid():
        return _render(request, what_if_form, status=400)
    partner = partner_for(request, what_if_form.cleaned_data["partner"].slug, write=True)
    form = _apply_form(request, partner, what_if_form, request.POST)
    if form.is_valid():
        reason = (
            f"{form.cleaned_data['reason']} — what-if: {what_if_form.summary()} "
            f"({reverse('what-if')}?{what_if_query.urlencode()})"
        )
        result = save_change(
            form,
            changes.change_limits,
            partner,
            request.user,
            form.limits(),
            reason,
            form.cleaned_data["revision"],
            within_ceilings=True,
        )
        if result:
            say_saved(request, result, f"Limits of {partner.name} set from the what-if")
            return redirect(partner)
    return _render(request, what_if_form, status=refusal_status(form), apply_form=form)


def _apply_form(request, partner: Partner, what_if_form: WhatIfForm, data=None) -> ApplyWhatIfForm:
    proposed = what_if_form.limits()
    initial = {
        **partner.limit_values(),
        **proposed,
        "revision": partner.revision,
        "what_if": what_if_form.data.urlencode(),
        "reason": APPLY_REASON,
    }
    if proposed["requests_per_minute"] is None:
        initial["burst"] = None  # a burst without a rate means nothing (and LimitsForm refuses it)
    return ApplyWhatIfForm(data, initial=initial, ceilings=ceilings_for(request.user, partner), prefix=APPLY_PREFIX)


def _proposal_form(request, partner: Partner, what_if_form: WhatIfForm) -> ApplyWhatIfForm | None:
    """The apply form filled with the proposal and checked at once, so that a manager sees
    the limits above the partner's ceilings before applying. None if the user may not change it."""
    if not may_change(request.user, partner):
        return None
    blank = _apply_form(request, partner, what_if_form)
    data = {blank.add_prefix(name): _as_posted(field, blank.initial.get(name)) for name, field in blank.fields.items()}
    checked = _apply_form(request, partner, what_if_form, data)
    checked.is_valid()
    return checked


def _as_posted(field, value) -> str:
    """A form value as the browser would post it (None is an empty field; 0 stays 0)."""
    prepared = field.prepare_value(value)
    return "" if prepared is None else str(prepared)


def _render(request, form: WhatIfForm, status: int = 200, apply_form=None) -> HttpResponse:
    context = {"form": form, "horizon_hours": HORIZON_SECONDS / 3600, "sdk_concurrency": SDK_CONCURRENCY}
    if form.is_bound and form.is_valid():
        partner = form.cleaned_data["partner"]
        started = time.perf_counter()
        projection = project(form.what_if(_default_limits()))
        context.update(
            partner=partner,
            projection=projection,
            words=describe(projection, partner, form),
            completion=duration(projection.completion_seconds) if projection.completion_seconds is not None else None,
            projection_seconds=time.perf_counter() - started,
            chart={"minutes": list(range(len(projection.cpu_by_minute))), "cpu": projection.cpu_by_minute},
            apply_form=apply_form or _proposal_form(request, partner, form),
        )
    return render(request, "dashboard/what_if.html", context, status=status)


def _default_limits() -> dict:
    defaults = FleetSettings.load().limit_values()
    return {name: defaults[name] for name in PARTNER_LIMIT_NAMES}


def describe(projection: Projection, partner: Partner, form: WhatIfForm) -> dict:
    """The projection in words."""
    data = form.cleaned_data
    servers = f"{data['servers']} server{'s' if data['servers'] != 1 else ''}"
    upload = f"{partner.name}'s {data['files']:,} files (about {format_bytes_short(projection.total_bytes)})"
    if projection.completion_seconds is None:
        completion = f"{upload} would make no progress on {servers}: no part completes."
    else:
        completion = f"{upload} would take about {duration(projection.completion_seconds)} on {servers}."
    return {
        "completion": completion,
        "cpu": (
            f"Fleet CPU would average {projection.mean_cpu_percent:.0f} % and reach "
            f"{projection.peak_cpu_percent:.0f} % in the busiest minute."
        ),
        "timeouts": (
            f"Expected timeouts: {projection.partner_timeouts:,.0f} for {partner.name}, "
            f"{projection.others_timeouts:,.0f} for other clients."
        ),
    }


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours / 24:.1f} days"
