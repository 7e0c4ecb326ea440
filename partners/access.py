"""The one place that decides who may see and touch which partner."""

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from dashboard import roles
from partners.models import Partner


def visible_partners(user) -> QuerySet[Partner]:
    partners = Partner.objects.all()
    return partners if roles.sees_all_partners(user) else partners.filter(managers=user)


def may_change(user, partner: Partner) -> bool:
    return roles.is_ops(user) or partner.managers.filter(pk=user.pk).exists()


def partner_for(request: HttpRequest, slug: str, write: bool = False) -> Partner:
    """The partner if the user may see it (else 404) and, with write, change it (else 403)."""
    partner = get_object_or_404(visible_partners(request.user), slug=slug)
    if write and not may_change(request.user, partner):
        raise PermissionDenied("Your role cannot change this partner.")
    return partner


def require_ops(request: HttpRequest) -> None:
    if not roles.is_ops(request.user):
        raise PermissionDenied("Only ops staff can do this.")
