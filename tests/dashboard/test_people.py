"""The People page: ops see every account's roles and give or take ops and engineer, audited."""

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from core.models import AccessAudit, AuditEntry
from core.roles import is_engineer, is_ops

pytestmark = pytest.mark.django_db


def set_roles(client, user, reason="joins the on-call rota", **roles):
    data = {"reason": reason, **{role: "on" for role, wanted in roles.items() if wanted}}
    return client.post(reverse("people-roles", args=[user.pk]), data, follow=True)


@pytest.mark.parametrize("role,status", [("ops", 200), ("engineer", 403), ("manager_a", 403), (None, 302)])
def test_who_opens_the_people_page(login, ops_user, engineer, manager_a, partner_a, role, status):
    user = {"ops": ops_user, "engineer": engineer, "manager_a": manager_a, None: None}[role]
    response = login(user).get(reverse("people"))
    assert response.status_code == status
    if status == 200:
        page = response.content.decode()
        assert "mara-manager-a" in page and "TheirStory" in page and "erin-engineer" in page


def test_ops_make_a_manager_an_engineer_and_it_is_audited(login, ops_user, manager_a):
    response = set_roles(login(ops_user), manager_a, engineer=True)
    assert "Roles of mara-manager-a saved" in response.content.decode()
    manager_a = User.objects.get(pk=manager_a.pk)
    assert is_engineer(manager_a) and not is_ops(manager_a)
    entry = AuditEntry.objects.get(action=AccessAudit.ROLES_CHANGED)
    assert (entry.before, entry.after) == ({"engineer": False}, {"engineer": True})
    assert entry.actor == ops_user and entry.reason == "joins the on-call rota"
    assert entry.subject == "user mara-manager-a"


def test_a_new_ops_user_holds_no_django_permission(login, ops_user, manager_a):
    set_roles(login(ops_user), manager_a, ops=True)
    manager_a = User.objects.get(pk=manager_a.pk)
    assert is_ops(manager_a) and manager_a.get_all_permissions() == set() and not manager_a.is_superuser


def test_without_a_reason_nothing_changes(login, ops_user, engineer):
    response = set_roles(login(ops_user), engineer, reason="", engineer=False)
    assert "say why" in response.content.decode()
    assert (
        is_engineer(User.objects.get(pk=engineer.pk))
        and not AuditEntry.objects.filter(action=AccessAudit.ROLES_CHANGED).exists()
    )


def test_only_ops_change_roles(login, ops_user, engineer, manager_a):
    response = login(engineer).post(reverse("people-roles", args=[manager_a.pk]), {"ops": "on", "reason": "me"})
    assert response.status_code == 403
    assert not is_ops(User.objects.get(pk=manager_a.pk))


def test_a_superusers_roles_are_not_changed_here(login, ops_user):
    root = User.objects.create_superuser("root", "root@example.org", "a-long-root-pass")
    response = set_roles(login(ops_user), root, ops=True)
    assert "superuser" in response.content.decode()
    assert not root.groups.exists()


def test_saving_the_same_roles_records_nothing(login, ops_user, engineer):
    response = set_roles(login(ops_user), engineer, engineer=True)
    assert "no role changed" in response.content.decode()
    assert not AuditEntry.objects.filter(action=AccessAudit.ROLES_CHANGED).exists()
