import logging

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db import DatabaseError
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dashboard import roles
from monitoring import shadow
from partners import changes, overrides
from partners.access import may_change, partner_for, require_ops, visible_partners
from partners.forms import (
    AuditFilterForm,
    LimitsForm,
    LoadControlForm,
    OverrideForm,
    PartnerForm,
    PauseForm,
    ResumeForm,
    ShadowLimitsForm,
)
from partners.models import (
    DEFAULTS_CLIENT_ID,
    LIMIT_FIELDS,
    AuditEntry,
    ExpiringOverride,
    OverrideKind,
    OverrideState,
    FleetSettings,
    Partner,
    UploadLimitRow,
)

logger = logging.getLogger(__name__)

AUDIT_PAGE_SIZE = 50
PARTNER_AUDIT_ROWS = 20


# Partners

@require_GET
def partner_list(request: HttpRequest) -> HttpResponse:
    partners = visible_partners(request.user).prefetch_related("managers")
    return render(request, "partners/partner_list.html", {
        "partners": partners,
        "fleet": FleetSettings.load(),
        "limit_fields": LIMIT_FIELDS,
    })


@require_http_methods(["GET", "POST"])
def partner_create(request: HttpRequest) -> HttpResponse:
    require_ops(request)
    form = PartnerForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        partner = _apply(form, changes.create_partner, request.user, form.partner_values(),
                         form.cleaned_data["managers"], form.cleaned_data["reason"])
        if partner:
            messages.success(request, f"Partner {partner.name} created. Set its limits below.")
            return redirect(partner)
    status = _error_status(form) if form.errors else 200
    return render(request, "partners/partner_create.html", {"form": form}, status=status)


@require_GET
def partner_detail(request: HttpRequest, slug: str) -> HttpResponse:
    return _render_detail(request, partner_for(request, slug))


def _limits_form(request, partner: Partner, data=None) -> LimitsForm:
    ceilings = None if roles.is_ops(request.user) else partner.ceilings()
    initial = {**partner.limit_values(), "revision": partner.revision}
    return LimitsForm(data, initial=initial, ceilings=ceilings, prefix="limits")


def _override_form(request, partner: Partner, data=None) -> OverrideForm:
    ceilings = None if roles.is_ops(request.user) else partner.ceilings()
    initial = {**partner.limit_values(), "revision": partner.revision}
    return OverrideForm(data, initial=initial, ceilings=ceilings, prefix="override",
                        current=partner.limit_values(), covered=overrides.covered_fields(partner))


def _shadow_form(request, partner: Partner, data=None) -> ShadowLimitsForm:
    ceilings = None if roles.is_ops(request.user) else partner.ceilings()
    initial = {**partner.shadow_values(), "revision": partner.revision}
    return ShadowLimitsForm(data, initial=initial, ceilings=ceilings, prefix="shadow")


def _settings_form(partner: Partner, data=None) -> PartnerForm:
    return PartnerForm(data, instance=partner, initial={"revision": partner.revision}, prefix="settings")


def _render_detail(request, partner: Partner, status: int = 200, **forms) -> HttpResponse:
    user_may_change = may_change(request.user, partner)
    is_ops = roles.is_ops(request.user)
    context = {
        "partner": partner,
        "may_change": user_may_change,
        "limits_form": forms.get("limits_form") or (_limits_form(request, partner) if user_may_change else None),
        "override_form": forms.get("override_form") or (
            _override_form(request, partner) if user_may_change else None),
        "overrides": _override_rows(overrides.active_overrides(partner)),
        "covered": overrides.covered_fields(partner),
        "reminder_minutes": settings.OVERRIDE_REMINDER_MINUTES,


        "shadow_form": forms.get("shadow_form") or (_shadow_form(request, partner) if user_may_change else None),
        "shadow_hours": shadow.last_day_by_hour(partner.client_id),
        "settings_form": forms.get("settings_form") or (_settings_form(partner) if is_ops else None),
        "pause_form": forms.get("pause_form") or PauseForm(prefix="pause"),
        "resume_form": ResumeForm(prefix="resume"),
        "published": UploadLimitRow.objects.filter(client_id=partner.client_id).first(),
        "fleet": FleetSettings.load(),
        "audit_entries": partner.audit_entries.all()[:PARTNER_AUDIT_ROWS],
        "limit_fields": LIMIT_FIELDS,
        "reduced_limits": partner.reduced_limits(),
    }
    return render(request, "partners/partner_detail.html", context, status=status)


@require_POST
def partner_limits(request: HttpRequest, slug: str) -> HttpResponse:
    partner = partner_for(request, slug, write=True)
    form = _limits_form(request, partner, request.POST)
    if form.is_valid():
        result = _apply(form, changes.change_limits, partner, request.user, form.limits(),
                        form.cleaned_data["reason"], form.cleaned_data["revision"])
        if result:
            _say_saved(request, result, f"Limits of {partner.name} saved")
            return redirect(partner)
    return _render_detail(request, partner, status=_error_status(form), limits_form=form)


def _override_rows(active) -> list[dict]:
    return [{"override": override,
             "plan": override.restore_plan() if override.kind == OverrideKind.LIMITS else []}
            for override in active]


@require_POST
def partner_override(request: HttpRequest, slug: str) -> HttpResponse:
    partner = partner_for(request, slug, write=True)
    form = _override_form(request, partner, request.POST)
    if form.is_valid():
        started = _apply(form, overrides.start_override, partner, request.user, form.changed_limits(),
                         form.cleaned_data["ends_at"], form.cleaned_data["reason"],
                         form.cleaned_data["revision"])
        if started:
            override, result = started
            messages.success(request, f"Temporary limits of {partner.name} in force until "
                                      f"{override.ends_at:%Y-%m-%d %H:%M} UTC; published as config "
                                      f"version {result.version}.")
            return redirect(f"{partner.get_absolute_url()}#overrides")
    return _render_detail(request, partner, status=_error_status(form), override_form=form)


@require_POST
def partner_override_end(request: HttpRequest, slug: str, override_id: int) -> HttpResponse:
    partner = partner_for(request, slug, write=True)
    override = get_object_or_404(partner.overrides, pk=override_id)
    form = ResumeForm(request.POST, prefix="end")
    form.is_valid()
    result = overrides.end_override(override, request.user, form.cleaned_data.get("reason", ""))
    _say_saved(request, result, f"{override.label().capitalize()} of {partner.name} ended")
    return redirect(f"{partner.get_absolute_url()}#overrides")


@require_POST
def partner_shadow(request: HttpRequest, slug: str) -> HttpResponse:
    partner = partner_for(request, slug, write=True)
    form = _shadow_form(request, partner, request.POST)
    if form.is_valid():
        result = _apply(form, changes.change_shadow_limits, partner, request.user, form.shadow_values(),
                        form.cleaned_data["reason"], form.cleaned_data["revision"])
        if result:
            _say_saved(request, result, f"Shadow limits of {partner.name} saved")
            return redirect(partner)
    return _render_detail(request, partner, status=_error_status(form), shadow_form=form)


@require_POST
def partner_settings(request: HttpRequest, slug: str) -> HttpResponse:
    partner = partner_for(request, slug)
    require_ops(request)
    form = _settings_form(partner, request.POST)
    if form.is_valid():
        result = _apply(form, changes.change_partner, partner, request.user, form.partner_values(),
                        form.cleaned_data["reason"], form.cleaned_data["revision"],
                        managers=form.cleaned_data["managers"])
        if result:
            _say_saved(request, result, f"Settings of {partner.name} saved")
            return redirect(partner)
    # A failed ModelForm has written the typed values onto the instance: show the saved ones.
    partner.refresh_from_db()
    return _render_detail(request, partner, status=_error_status(form), settings_form=form)


def _apply(form, change, *args, **kwargs) -> changes.ChangeResult | None:
    """Run a change; on a stale form or a failed commit, say so on the form and return None."""
    try:
        return change(*args, **kwargs)
    except (changes.StaleEdit, overrides.OverrideConflict, overrides.NothingToOverride) as refused:
        form.add_error(None, str(refused))
    except DatabaseError as error:
        logger.exception("A change failed to commit")
        form.database_failed = True
        form.add_error(None, f"The change could not be saved and published ({error.__class__.__name__}). "
                             "Nothing was changed; try again in a moment.")
    return None


def _error_status(form) -> int:
    return 503 if getattr(form, "database_failed", False) else 400


def _say_saved(request, result: changes.ChangeResult, what: str) -> None:
    if result.changed:
        messages.success(request, f"{what}; published as config version {result.version}.")
    else:
        messages.info(request, "Nothing changed.")


@require_POST
def partner_pause(request: HttpRequest, slug: str) -> HttpResponse:
    partner = partner_for(request, slug, write=True)
    form = PauseForm(request.POST, prefix="pause")
    result = form.is_valid() and _apply(form, changes.pause_partner, partner, request.user,
                                        form.cleaned_data["reason"], form.cleaned_data["resume_at"])
    if not result:
        return _render_detail(request, partner, status=_error_status(form), pause_form=form)
    messages.warning(request, f"Imports of {partner.name} paused (config version {result.version}).")
    return redirect(partner)


@require_POST
def partner_resume(request: HttpRequest, slug: str) -> HttpResponse:
    partner = partner_for(request, slug, write=True)
    form = ResumeForm(request.POST, prefix="resume")
    form.is_valid()
    result = changes.resume_partner(partner, request.user, form.cleaned_data.get("reason", ""))
    _say_saved(request, result, f"Imports of {partner.name} resumed")
    return redirect(partner)


# Global controls: defaults for clients without a row, and the pause of all partner imports.

def _render_controls(request, status: int = 200, **forms) -> HttpResponse:
    fleet = FleetSettings.load()
    context = {
        "fleet": fleet,
        "defaults_form": forms.get("defaults_form") or LimitsForm(
            initial={**fleet.limit_values(), "revision": fleet.revision}, prefix="defaults"),
        "pause_form": forms.get("pause_form") or PauseForm(prefix="pause"),
        "resume_form": ResumeForm(prefix="resume"),
        "published": UploadLimitRow.objects.filter(client_id=DEFAULTS_CLIENT_ID).first(),
        "limit_fields": LIMIT_FIELDS,
        "overrides": _override_rows(ExpiringOverride.objects.filter(
            Q(partner__in=visible_partners(request.user)) | Q(partner=None), state=OverrideState.ACTIVE,
        ).select_related("partner", "created_by")),
        "load_form": forms.get("load_form") or LoadControlForm(
            instance=fleet, initial={"revision": fleet.revision}, prefix="load"),
        "bulk_partners": [p for p in visible_partners(request.user).filter(priority="bulk") if p.has_limits()],
    }
    return render(request, "partners/controls.html", context, status=status)


@require_GET
def controls(request: HttpRequest) -> HttpResponse:
    return _render_controls(request)


@require_POST
def controls_defaults(request: HttpRequest) -> HttpResponse:
    require_ops(request)
    form = LimitsForm(request.POST, prefix="defaults")
    if form.is_valid():
        result = _apply(form, changes.change_default_limits, request.user, form.limits(),
                        form.cleaned_data["reason"], form.cleaned_data["revision"])
        if result:
            _say_saved(request, result, "Default limits saved")
            return redirect("controls")
    return _render_controls(request, status=_error_status(form), defaults_form=form)


@require_POST
def controls_load(request: HttpRequest) -> HttpResponse:
    require_ops(request)
    form = LoadControlForm(request.POST, instance=FleetSettings.load(), prefix="load")
    if form.is_valid():
        result = _apply(form, changes.change_load_control_settings, request.user, form.settings_values(),
                        form.cleaned_data["reason"], form.cleaned_data["revision"])
        if result:
            if result.changed:
                messages.success(request, "Load-coupled limits settings saved; the next run (each minute) applies them.")
            else:
                messages.info(request, "Nothing changed.")
            return redirect("controls")
    return _render_controls(request, status=_error_status(form), load_form=form)


@require_POST
def controls_pause_all(request: HttpRequest) -> HttpResponse:
    require_ops(request)
    form = PauseForm(request.POST, prefix="pause")
    result = form.is_valid() and _apply(form, changes.pause_all_partners, request.user,
                                        form.cleaned_data["reason"], form.cleaned_data["resume_at"])
    if not result:
        return _render_controls(request, status=_error_status(form), pause_form=form)
    messages.warning(request, f"All partner imports paused (config version {result.version}).")
    return redirect("controls")


@require_POST
def controls_resume_all(request: HttpRequest) -> HttpResponse:
    require_ops(request)
    form = ResumeForm(request.POST, prefix="resume")
    form.is_valid()
    result = changes.resume_all_partners(request.user, form.cleaned_data.get("reason", ""))
    _say_saved(request, result, "All partner imports resumed")
    return redirect("controls")


# Audit log

def _visible_audit_entries(user) -> QuerySet[AuditEntry]:
    entries = AuditEntry.objects.select_related("partner")
    if roles.sees_all_partners(user):
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
    return render(request, "partners/audit_log.html",
                  {"form": form, "page": page, "query": query.urlencode()}, status=status)


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
