"""No form an ops user can reach in the admin makes the worker run code of their choosing.

A django-q Schedule names a function the worker calls; a user or group edit can grant
superuser or the schedule permissions. Ops (and staff outside ops) read those models, and
only a superuser changes them.
"""

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group, Permission, User
from django.urls import NoReverseMatch, reverse
from django_q.models import Failure, OrmQ, Schedule, Success, Task

from core.apps import ensure_role_groups
from core.roles import OPS_GROUP
from tests.factories import make_user

pytestmark = pytest.mark.django_db

# The models whose change runs code on the worker host or hands out rights.
GUARDED = [Schedule, Task, Success, Failure, OrmQ, User, Group, Permission]


def guarded_state() -> dict:
    return {
        "schedules": list(Schedule.objects.values_list("id", "func", "args", "next_run")),
        "tasks": list(Task.objects.values_list("id", "func")),
        "queued": OrmQ.objects.count(),
        "users": list(User.objects.values_list("id", "username", "is_superuser", "is_staff", "is_active", "password")),
        "groups": list(Group.objects.values_list("id", "name")),
        "user_groups": list(User.groups.through.objects.values_list("user_id", "group_id")),
        "user_permissions": list(User.user_permissions.through.objects.values_list("user_id", "permission_id")),
        "group_permissions": list(Group.permissions.through.objects.values_list("group_id", "permission_id")),
        "permissions": Permission.objects.count(),
    }


def admin_url(model, view: str, *args) -> str | None:
    try:
        return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)
    except NoReverseMatch:
        return None


def registered_models() -> list:
    return [model for model in apps.get_models(include_auto_created=True) if admin.site.is_registered(model)]


# What an attacker would post: a schedule that runs a shell command, and a user made superuser.
EVIL_FORM = {
    "name": "x",
    "func": "subprocess.getoutput",
    "args": "'id > /tmp/pwned'",
    "schedule_type": "I",
    "minutes": "1",
    "repeats": "-1",
    "next_run_0": "2026-01-01",
    "next_run_1": "00:00:00",
    "username": "olivia-ops",
    "is_superuser": "on",
    "is_staff": "on",
    "is_active": "on",
    "groups": "1",
    "user_permissions": "1",
    "permissions": "1",
    "password1": "Another-long-pass-1",
    "password2": "Another-long-pass-1",
    "date_joined_0": "2026-01-01",
    "date_joined_1": "00:00:00",
    "change_reason": "admin walk",
}


@pytest.fixture
def an_object_of_every_guarded_model(ops_user):
    Schedule.objects.create(name="walked", func="core.tasks.nothing", schedule_type=Schedule.MINUTES, minutes=5)
    Success.objects.create(
        id="a" * 32,
        name="done",
        func="math.floor",
        started="2026-01-01T00:00Z",
        stopped="2026-01-01T00:00Z",
        success=True,
    )
    Failure.objects.create(
        id="b" * 32,
        name="failed",
        func="math.floor",
        started="2026-01-01T00:00Z",
        stopped="2026-01-01T00:00Z",
        success=False,
    )
    Group.objects.get_or_create(name="engineers")


@pytest.mark.parametrize("kind", ["ops", "staff outside ops", "ops without is_staff"])
def test_no_admin_form_lets_ops_or_staff_change_users_groups_or_the_workers_jobs(
    client, ops_user, an_object_of_every_guarded_model, kind
):
    user = {
        "ops": ops_user,
        "staff outside ops": make_user("stan-staff", is_staff=True),
        "ops without is_staff": make_user("otto-ops", OPS_GROUP),
    }[kind]
    client.force_login(user)
    before = guarded_state()
    walked = 0
    for model in registered_models():
        targets = [admin_url(model, "add")]
        for obj in model._default_manager.all()[:3]:
            targets += [admin_url(model, "change", obj.pk), admin_url(model, "delete", obj.pk)]
            if model is User:
                targets.append(admin_url(model, "password_change", obj.pk))
        for url in filter(None, targets):
            client.get(url)
            response = client.post(url, {**EVIL_FORM, "post": "yes"})
            walked += 1
            if model in GUARDED:
                assert response.status_code in (302, 403), f"POST {url} as {kind}: {response.status_code}"
        changelist = admin_url(model, "changelist")
        if changelist and model in GUARDED:
            ids = [str(pk) for pk in model._default_manager.values_list("pk", flat=True)[:3]]
            for action in ("resubmit_task", "delete_selected"):
                client.post(changelist, {"action": action, "_selected_action": ids, "index": 0})
    assert walked > 20
    assert guarded_state() == before
    user.refresh_from_db()
    assert not user.is_superuser and user.get_all_permissions() == set()


def test_ops_may_still_read_users_and_schedules_in_the_admin(login, ops_user):
    client = login(ops_user)
    assert client.get(admin_url(User, "changelist")).status_code == 200
    assert client.get(admin_url(Schedule, "changelist")).status_code == 200
    page = client.get(admin_url(User, "change", ops_user.pk))
    assert page.status_code == 200 and 'name="is_superuser"' not in page.content.decode()


def test_a_superuser_still_changes_users_and_schedules(client):
    root = User.objects.create_superuser("root", "root@example.org", "a-long-root-pass")
    client.force_login(root)
    response = client.post(
        admin_url(Schedule, "add"),
        {
            "name": "tidy",
            "func": "math.floor",
            "args": "1",
            "schedule_type": "I",
            "minutes": "5",
            "repeats": "-1",
            "next_run_0": "2026-01-01",
            "next_run_1": "00:00:00",
            "cluster": "",
            "intended_date_kwarg": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Schedule.objects.filter(name="tidy").exists()


def test_the_role_groups_hold_no_permission_even_where_an_old_seed_granted_them(ops_user):
    ops = Group.objects.get(name=OPS_GROUP)
    ops.permissions.add(*Permission.objects.filter(content_type__app_label="auth"))
    ensure_role_groups()
    assert not ops.permissions.exists()
    assert not Group.objects.get(name="engineers").permissions.exists()
    ops_user = User.objects.get(pk=ops_user.pk)
    assert ops_user.get_all_permissions() == set()


def test_an_ops_user_without_is_staff_opens_the_admin(client):
    client.force_login(make_user("otto-ops", OPS_GROUP))
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert "Scaling groups" in response.content.decode()


def test_a_user_in_no_group_is_kept_out_of_the_admin(client):
    client.force_login(make_user("nobody"))
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
