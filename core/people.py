"""Who is ops and who is an engineer: changed by ops on the People page, audited.

A role is membership of a role group (core.roles); the groups hold no Django permission
(core.apps), so making someone ops gives them ops' pages and the admin's audited forms, never
superuser or the worker's schedules. Superusers are changed in the admin only.
"""

from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import transaction

from core import audit
from core.models import AccessAudit
from core.roles import ENGINEERS_GROUP, OPS_GROUP, is_ops

ROLE_GROUPS = {"ops": OPS_GROUP, "engineer": ENGINEERS_GROUP}


def roles_of(user) -> dict[str, bool]:
    names = set(user.groups.values_list("name", flat=True))
    return {role: group in names for role, group in ROLE_GROUPS.items()}


def set_roles(actor, user, wanted: dict[str, bool], reason: str) -> bool:
    """Give or take the ops and engineer roles; False when nothing changed (nothing is audited)."""
    if not is_ops(actor):
        raise PermissionDenied("Only ops staff can change roles.")
    if user.is_superuser:
        raise PermissionDenied("A superuser's roles are changed in the admin, by a superuser.")
    with transaction.atomic():
        before = roles_of(user)
        after = {role: bool(wanted.get(role, False)) for role in ROLE_GROUPS}
        if after == before:
            return False
        for role, group_name in ROLE_GROUPS.items():
            group = Group.objects.get_or_create(name=group_name)[0]
            (user.groups.add if after[role] else user.groups.remove)(group)
        changed_before, changed_after = audit.diff(before, after)
        audit.record(
            actor, AccessAudit.ROLES_CHANGED, f"user {user.get_username()}", changed_before, changed_after, reason
        )
    return True
