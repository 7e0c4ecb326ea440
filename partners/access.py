"""The one place that decides who may see and touch which partner."""

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from core import roles
from partners.models import Partner


def visible_partners(user) -> QuerySet[Partner]:
    partners = Partner.objects.all()
    return partners if roles.sees_everything(user) else partners.filter(managers=user)


def may_change(user, partner: Partner) -> bool:
    return roles.is_ops(user) or partner.managers.filter(pk=user.pk).exists()


def partner_for(request: HttpRequest, slug: str, write: bool = False) -> Partner:
    """The partner if the user may see it (else 404) and, with write, change it (else 403)."""
    partner = get_object_or_404(visible_partners(request.user), slug=slug)
    if write and not may_change(request.user, partner):
        raise PermissionDenied("Your role cannot change this partner.")
    return partner


def ceilings_for(user, partner: Partner) -> dict | None:
    """The ceilings a user's edits of this partner must keep within: none for ops."""
    return None if roles.is_ops(user) else partner.ceilings()
