"""Who may do what: the one place that knows the roles.

- ops staff: members of the "ops" group (or superusers); see and change everything.
- partner managers: users linked to partners through Partner.managers; see and change
  only those partners' limits (within ceilings) and pauses.
- engineers: members of the "engineers" group; read everything, change nothing here,
  receive alert emails.
"""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

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


def sees_all_partners(user) -> bool:
    """Ops and engineers read every partner; managers read only their own."""
    return is_ops(user) or is_engineer(user)


def role_label(user) -> str:
    if is_ops(user):
        return "ops"
    if is_engineer(user):
        return "engineer"
    if user.is_authenticated and user.managed_partners.exists():
        return "partner manager"
    return "no role"
