"""The People page: every account with its roles (ops, engineer, manager of which partners);
ops give or take the ops and engineer roles here, audited. A partner's managers are chosen in
that partner's settings."""

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from core import people
from core.forms import ReasonField
from core.roles import ops_required


class RolesForm(forms.Form):
    ops = forms.BooleanField(required=False)
    engineer = forms.BooleanField(required=False)
    reason = ReasonField()


@require_GET
@ops_required
def people_list(request: HttpRequest) -> HttpResponse:
    users = get_user_model().objects.order_by("username").prefetch_related("groups", "managed_partners")
    rows = [{"user": user, "roles": people.roles_of(user), "partners": user.managed_partners.all()} for user in users]
    return render(request, "dashboard/people.html", {"rows": rows})


@require_POST
@ops_required
def people_roles(request: HttpRequest, user_id: int) -> HttpResponse:
    user = get_object_or_404(get_user_model(), pk=user_id)
    form = RolesForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"{user.get_username()}: say why; the reason goes into the audit log.")
        return redirect("people")
    try:
        changed = people.set_roles(request.user, user, form.cleaned_data, form.cleaned_data["reason"])
    except PermissionDenied as refused:
        messages.error(request, str(refused))
        return redirect("people")
    if changed:
        messages.success(request, f"Roles of {user.get_username()} saved.")
    else:
        messages.info(request, f"{user.get_username()}: no role changed.")
    return redirect("people")
