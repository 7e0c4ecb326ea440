"""Partner pages and the global controls: limits, ceilings, shadow and temporary limits, pauses
(of one partner, or of all partners), the defaults and load-coupled limits."""

from django.conf import settings
from django.contrib import messages
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core import roles
from core.forms import refusal_status, save_change, say_saved
from core.roles import ops_required
from monitoring import queries
from partners import changes, overrides
from partners.access import ceilings_for, may_change, partner_for, visible_partners
from partners.forms import (
    LimitsForm,
    LoadControlForm,
    OverrideForm,
    PartnerForm,
    PauseForm,
    ResumeForm,
    ShadowLimitsForm,
)
from partners.models import DEFAULTS_CLIENT_ID, LIMIT_FIELDS, FleetSettings, Override, UploadLimitRow

PARTNER_AUDIT_ROWS = 20


# Partners


@require_GET
def partner_list(request: HttpRequest) -> HttpResponse:
    partners = visible_partners(request.user).prefetch_related("managers").with_pause()
    return render(
        request,
        "partners/partner_list.html",
        {
            "partners": partners,
            "fleet": FleetSettings.load(),
            "pause_all": Override.objects.active_pause_of(None),
            "limit_fields": LIMIT_FIELDS,
        },
    )


@require_http_methods(["GET", "POST"])
@ops_required
def partner_create(request: HttpRequest) -> HttpResponse:
    form = PartnerForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        partner = save_change(
            form,
            changes.create_partner,
            request.user,
            form.partner_values(),
            form.cleaned_data["managers"],
            form.cleaned_data["reason"],
        )
        if partner:
            messages.success(request, f"Partner {partner.name} created. Set its limits below.")
            return redirect(partner)
    status = refusal_status(form) if form.errors else 200
    return render(request, "partners/partner_create.html", {"form": form}, status=status)


@require_GET
def partner_detail(request: HttpRequest, slug: str) -> HttpResponse:
    return _render_detail(request, partner_for(request, slug))


def _limits_form(request, partner, data=None) -> LimitsForm:
    initial = {**partner.limit_values(), "revision": partner.revision}
    return LimitsForm(data, initial=initial, ceilings=ceilings_for(request.user, partner), prefix="limits")


def _override_form(request, partner, data=None) -> OverrideForm:
    initial = {**partner.limit_values(), "revision": partner.revision}
    return OverrideForm(
        data,
        initial=initial,
        ceilings=ceilings_for(request.user, partner),
        prefix="override",
        current=partner.limit_values(),
        covered=overrides.covered_fields(partner),
    )


def _shadow_form(request, partner, data=None) -> ShadowLimitsForm:
    initial = {**partner.shadow_values(), "revision": partner.revision}
    return ShadowLimitsForm(data, initial=initial, ceilings=ceilings_for(request.user, partner), prefix="shadow")


def _settings_form(partner, data=None) -> PartnerForm:
    return PartnerForm(data, instance=partner, initial={"revision": partner.revision}, prefix="settings")


def _override_rows(active) -> list[dict]:
    return [{"override": override, "plan": [] if override.is_pause else override.restore_plan()} for override in active]


def _render_detail(request, partner, status: int = 200, **forms) -> HttpResponse:
    editable = may_change(request.user, partner)

    def form(name, build):
        return forms.get(name) or (build() if editable else None)

    return render(
        request,
        "partners/partner_detail.html",
        {
            "partner": partner,
            "may_change": editable,
            "limits_form": form("limits_form", lambda: _limits_form(request, partner)),
            "override_form": form("override_form", lambda: _override_form(request, partner)),
            "shadow_form": form("shadow_form", lambda: _shadow_form(request, partner)),
            "settings_form": forms.get("settings_form")
            or (_settings_form(partner) if roles.is_ops(request.user) else None),
            "pause_form": forms.get("pause_form") or PauseForm(prefix="pause", all_partners=True),
            "resume_form": ResumeForm(prefix="resume"),
            "overrides": _override_rows(overrides.active_overrides(partner)),
            "covered": overrides.covered_fields(partner),
            "reminder_minutes": settings.OVERRIDE_REMINDER_MINUTES,
            "shadow_hours": queries.shadow_outcomes_by_hour(partner.client_id),
            "published": UploadLimitRow.objects.filter(client_id=partner.client_id).first(),
            "pause_all": Override.objects.active_pause_of(None),
            "audit_entries": partner.audit_entries.all()[:PARTNER_AUDIT_ROWS],
            "limit_fields": LIMIT_FIELDS,
            "reduced_limits": partner.reduced_limits(),
        },
        status=status,
    )


def _save_limits(request, partner, form_name: str, form, change, values, what: str) -> HttpResponse:
    """Save a limits form (limits, shadow limits) and go back to the partner; else show its errors."""
    if form.is_valid():
        result = save_change(
            form, change, partner, request.user, values(), form.cleaned_data["reason"], form.cleaned_data["revision"]
        )
        if result:
            say_saved(request, result, f"{what} of {partner.name} saved")
            return redirect(partner)
    return _render_detail(request, partner, status=refusal_status(form), **{form_name: form})


@require_POST
def partner_limits(request: HttpRequest, slug: str) -> HttpResponse:
    partner = partner_for(request, slug, write=True)
    form = _limits_form(request, partner, request.POST)
    return _save_limits(request, partner, "limits_form", form, changes.change_limits, form.limits, "Limits")


@require_POST
def partner_override(request: HttpRequest, slug: str) -> HttpResponse:
    partner = partner_for(request, slug, write=True)
    form = _override_form(request, partner, request.POST)
    if form.is_valid():
        started = save_change(
            form,
            overrides.start_override,
            partner,
            request.user,
            form.changed_limits(),
            form.cleaned_data["ends_at"],
            form.cleaned_data["reason"],
            form.cleaned_data["revision"],
        )
        if started:
            override, result = started
            messages.success(
                request,
                f"Temporary limits of {partner.name} in force until "
                f"{override.ends_at:%Y-%m-%d %H:%M} UTC; published as config "
                f"version {result.version}.",
            )
            return redirect(f"{partner.get_absolute_url()}#overrides")
    return _render_detail(request, partner, status=refusal_status(form), override_form=form)


@require_POST
def partner_override_end(request: HttpRequest, slug: str, override_id: int) -> HttpResponse:
    partner = partner_for(request, slug, write=True)
    override = get_object_or_404(partner.overrides, pk=override_id)
    form = ResumeForm(request.POST, prefix="end")
    form.is_valid()
    result = overrides.end_override(override, request.user, form.cleaned_data.get("reason", ""))
    say_saved(request, result, f"{override.label().capitalize()} of {partner.name} ended")
    return redirect(f"{partner.get_absolute_url()}#overrides")


@require_POST
def partner_shadow(request: HttpRequest, slug: str) -> HttpResponse:
    partner = partner_for(request, slug, write=True)
    form = _shadow_form(request, partner, request.POST)
    return _save_limits(
        request, partner, "shadow_form", form, changes.change_shadow_limits, form.shadow_values, "Shadow limits"
    )


@require_POST
def partner_settings(request: HttpRequest, slug: str) -> HttpResponse:
    partner = partner_for(request, slug)
    roles.require_ops(request)
    form = _settings_form(partner, request.POST)
    if form.is_valid():
        result = save_change(
            form,
            changes.change_partner,
            partner,
            request.user,
            form.partner_values(),
            form.cleaned_data["reason"],
            form.cleaned_data["revision"],
            managers=form.cleaned_data["managers"],
        )
        if result:
            say_saved(request, result, f"Settings of {partner.name} saved")
            return redirect(partner)
    # A failed ModelForm has written the typed values onto the instance: show the saved ones.
    partner.refresh_from_db()
    return _render_detail(request, partner, status=refusal_status(form), settings_form=form)


@require_POST
def partner_pause(request: HttpRequest, slug: str) -> HttpResponse:
    partner = partner_for(request, slug, write=True)
    form = PauseForm(request.POST, prefix="pause")
    result = form.is_valid() and save_change(
        form, changes.pause, partner, request.user, form.cleaned_data["reason"], form.cleaned_data["resume_at"]
    )
    if not result:
        return _render_detail(request, partner, status=refusal_status(form), pause_form=form)
    messages.warning(request, f"Imports of {partner.name} paused (config version {result.version}).")
    return redirect(partner)


@require_POST
def partner_resume(request: HttpRequest, slug: str) -> HttpResponse:
    partner = partner_for(request, slug, write=True)
    form = ResumeForm(request.POST, prefix="resume")
    form.is_valid()
    result = changes.resume(partner, request.user, form.cleaned_data.get("reason", ""))
    say_saved(request, result, f"Imports of {partner.name} resumed")
    return redirect(partner)


# Global controls: defaults for clients without a row, the pause of all partner imports, and
# load-coupled limits.


def _render_controls(request, status: int = 200, **forms) -> HttpResponse:
    fleet = FleetSettings.load()
    visible = visible_partners(request.user)
    timed = Override.objects.active().filter(Q(partner__in=visible) | Q(partner=None), ends_at__isnull=False)
    return render(
        request,
        "partners/controls.html",
        {
            "fleet": fleet,
            "pause_all": Override.objects.active_pause_of(None),
            "defaults_form": forms.get("defaults_form")
            or LimitsForm(initial={**fleet.limit_values(), "revision": fleet.revision}, prefix="defaults"),
            "pause_form": forms.get("pause_form") or PauseForm(prefix="pause", all_partners=True),
            "resume_form": ResumeForm(prefix="resume"),
            "published": UploadLimitRow.objects.filter(client_id=DEFAULTS_CLIENT_ID).first(),
            "limit_fields": LIMIT_FIELDS,
            "overrides": _override_rows(timed.select_related("partner", "created_by")),
            "load_form": forms.get("load_form")
            or LoadControlForm(instance=fleet, initial={"revision": fleet.revision}, prefix="load"),
            "bulk_partners": [p for p in visible.filter(priority="bulk") if p.has_limits()],
        },
        status=status,
    )


@require_GET
def controls(request: HttpRequest) -> HttpResponse:
    return _render_controls(request)


@require_POST
@ops_required
def controls_defaults(request: HttpRequest) -> HttpResponse:
    form = LimitsForm(request.POST, prefix="defaults")
    if form.is_valid():
        result = save_change(
            form,
            changes.change_default_limits,
            request.user,
            form.limits(),
            form.cleaned_data["reason"],
            form.cleaned_data["revision"],
        )
        if result:
            say_saved(request, result, "Default limits saved")
            return redirect("partners:controls")
    return _render_controls(request, status=refusal_status(form), defaults_form=form)


@require_POST
@ops_required
def controls_load(request: HttpRequest) -> HttpResponse:
    form = LoadControlForm(request.POST, instance=FleetSettings.load(), prefix="load")
    if form.is_valid():
        result = save_change(
            form,
            changes.change_load_control_settings,
            request.user,
            form.settings_values(),
            form.cleaned_data["reason"],
            form.cleaned_data["revision"],
        )
        if result:
            say_saved(request, result, "Load-coupled limits settings saved; the next run (each minute) applies them")
            return redirect("partners:controls")
    return _render_controls(request, status=refusal_status(form), load_form=form)


@require_POST
@ops_required
def controls_pause_all(request: HttpRequest) -> HttpResponse:
    form = PauseForm(request.POST, prefix="pause", all_partners=True)
    result = form.is_valid() and save_change(
        form, changes.pause, None, request.user, form.cleaned_data["reason"], form.cleaned_data["resume_at"]
    )
    if not result:
        return _render_controls(request, status=refusal_status(form), pause_form=form)
    messages.warning(request, f"All partner imports paused (config version {result.version}).")
    return redirect("partners:controls")


@require_POST
@ops_required
def controls_resume_all(request: HttpRequest) -> HttpResponse:
    form = ResumeForm(request.POST, prefix="resume")
    form.is_valid()
    result = changes.resume(None, request.user, form.cleaned_data.get("reason", ""))
    say_saved(request, result, "All partner imports resumed")
    return redirect("partners:controls")
