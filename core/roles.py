"""Who may do what: the one place that knows the roles, and the decorators views use.

- ops staff: members of the "ops" group (or superusers); see and change everything.
- engineers: members of the "engineers" group; read everything, change nothing but
  acknowledgements, receive alert emails.
- partner managers: users linked to partners (partners.Partner.managers); see and change only
  those partners (the partners app decides which: partners.access).

"Sees everything" (ops or engineer) opens the fleet-wide pages: fleet, servers, alerts, risk.
A user with none of the three roles (an account made but not yet given a role) sees no fleet
data at all: not the overview's charts, the servers table or the alerts on the timeline.
"""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

OPS_GROUP = "ops"
ENGINEERS_GROUP = "engineers"


def _group_names(user: AbstractBaseUser | AnonymousUser) -> set[str]:
    if not user.is_authenticated:
        return set()
    cached = getattr(user, "_upload_ops_groups", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        user._upload_ops_groups = cached
    return cached


def is_ops(user) -> bool:
    return user.is_authenticated and (user.is_superuser or OPS_GROUP in _group_names(user))


def is_engineer(user) -> bool:
    return ENGINEERS_GROUP in _group_names(user)


def sees_everything(user) -> bool:
    """Ops and engineers read every partner and the fleet-wide pages; managers do not."""
    return is_ops(user) or is_engineer(user)


def manages_a_partner(user) -> bool:
    if not user.is_authenticated:
        return False
    cached = getattr(user, "_upload_ops_manages", None)
    if cached is None:
        cached = user.managed_partners.exists()
        user._upload_ops_manages = cached
    return cached


def has_role(user) -> bool:
    """Ops, engineer or a partner's manager: who may see the fleet's figures on the overview."""
    return sees_everything(user) or manages_a_partner(user)


def role_label(user) -> str:
    if is_ops(user):
        return "ops"
    if is_engineer(user):
        return "engineer"
    if manages_a_partner(user):
        return "partner manager"
    return "no role"


def engineer_addresses() -> list[str]:
    """The email addresses of active engineers: who hears about alerts and a stopped worker."""
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.filter(groups__name=ENGINEERS_GROUP, is_active=True).exclude(email="")
    return sorted(set(users.values_list("email", flat=True)))


def require_ops(request: HttpRequest) -> None:
    if not is_ops(request.user):
        raise PermissionDenied("Only ops staff can do this.")


def require_ops_or_engineer(request: HttpRequest) -> None:
    if not sees_everything(request.user):
        raise PermissionDenied("Only ops and engineers can see this.")


def _requiring(check: Callable[[HttpRequest], None]):
    def decorator(view):
        @wraps(view)
        def checked(request: HttpRequest, *args, **kwargs):
            check(request)
            return view(request, *args, **kwargs)

        return checked

    return decorator


ops_required = _requiring(require_ops)
ops_or_engineer_required = _requiring(require_ops_or_engineer)


def user_roles(request) -> dict:
    """Context processor: what the navigation needs to know about the user."""
    user = request.user
    return {
        "user_is_ops": is_ops(user),
        "user_sees_everything": sees_everything(user),
        "user_has_role": has_role(user),
        "user_role": role_label(user) if user.is_authenticated else "",
    }
