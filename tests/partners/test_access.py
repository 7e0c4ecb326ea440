"""The role matrix: who gets 200/302, 403, 404, and the login redirect, on every view."""

import pytest
from django.urls import reverse

from core.models import AuditEntry
from partners.models import FleetSettings, Partner

ROLES = ["ops", "manager_a", "manager_b", "engineer", "anonymous"]

# (url name, needs partner A's slug, method, expected status per role)
MATRIX = [
    ("overview", False, "get", {"ops": 200, "manager_a": 200, "manager_b": 200, "engineer": 200}),
    ("partners:list", False, "get", {"ops": 200, "manager_a": 200, "manager_b": 200, "engineer": 200}),
    ("partners:create", False, "get", {"ops": 200, "manager_a": 403, "manager_b": 403, "engineer": 403}),
    ("partners:detail", True, "get", {"ops": 200, "manager_a": 200, "manager_b": 404, "engineer": 200}),
    ("partners:limits", True, "post", {"ops": 302, "manager_a": 302, "manager_b": 404, "engineer": 403}),
    ("partners:settings", True, "post", {"ops": 302, "manager_a": 403, "manager_b": 404, "engineer": 403}),
    ("partners:pause", True, "post", {"ops": 302, "manager_a": 302, "manager_b": 404, "engineer": 403}),
    ("partners:resume", True, "post", {"ops": 302, "manager_a": 302, "manager_b": 404, "engineer": 403}),
    ("partners:controls", False, "get", {"ops": 200, "manager_a": 200, "manager_b": 200, "engineer": 200}),
    ("partners:controls-defaults", False, "post", {"ops": 302, "manager_a": 403, "manager_b": 403, "engineer": 403}),
    ("partners:controls-pause-all", False, "post", {"ops": 302, "manager_a": 403, "manager_b": 403, "engineer": 403}),
    ("partners:controls-resume-all", False, "post", {"ops": 302, "manager_a": 403, "manager_b": 403, "engineer": 403}),
    ("audit", False, "get", {"ops": 200, "manager_a": 200, "manager_b": 200, "engineer": 200}),
]


def valid_post_data(url_name: str, partner) -> dict:
    if url_name == "partners:limits":
        return {
            "limits-requests_per_minute": "100",
            "limits-burst": "10",
            "limits-max_concurrent_uploads": "12",
            "limits-max_bytes_in_flight": "30 GB",
            "limits-daily_upload_bytes": "3 TB",
            "limits-reason": "matrix",
            "limits-revision": partner.revision,
        }
    if url_name == "partners:settings":
        return {
            "settings-name": partner.name,
            "settings-slug": partner.slug,
            "settings-client_id": partner.client_id,
            "settings-priority": "bulk",
            "settings-ceiling_requests_per_minute": "300",
            "settings-ceiling_burst": "50",
            "settings-ceiling_max_concurrent_uploads": "41",
            "settings-ceiling_max_bytes_in_flight": "100 GB",
            "settings-ceiling_daily_upload_bytes": "10 TB",
            "settings-managers": [m.pk for m in partner.managers.all()],
            "settings-reason": "matrix",
            "settings-revision": partner.revision,
        }
    if url_name in ("partners:pause", "partners:controls-pause-all"):
        return {"pause-reason": "matrix", "pause-confirm": "on"}
    if url_name == "partners:controls-defaults":
        return {
            "defaults-requests_per_minute": "500",
            "defaults-reason": "matrix",
            "defaults-revision": FleetSettings.load().revision,
        }
    return {}


@pytest.fixture
def users(ops_user, manager_a, manager_b, engineer):
    return {"ops": ops_user, "manager_a": manager_a, "manager_b": manager_b, "engineer": engineer, "anonymous": None}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("url_name,scoped,method,expected", MATRIX, ids=[row[0] for row in MATRIX])
def test_role_matrix(login, users, partner_a, partner_b, role, url_name, scoped, method, expected):
    if url_name == "partners:resume":
        from partners import changes

        changes.pause(partner_a, users["ops"], "so it can be resumed", None)
        partner_a.refresh_from_db()
    url = reverse(url_name, args=[partner_a.slug] if scoped else [])
    client = login(users[role])
    audit_before = AuditEntry.objects.count()
    response = getattr(client, method)(url, valid_post_data(url_name, partner_a) if method == "post" else None)

    if role == "anonymous":
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
        return
    assert response.status_code == expected[role], response.content[:500]
    if method == "post" and expected[role] != 302:
        assert AuditEntry.objects.count() == audit_before, "a refused change must not be audited"


def test_manager_sees_only_their_partners_in_the_list(login, manager_a, partner_a, partner_b):
    page = login(manager_a).get(reverse("partners:list")).content.decode()
    assert "TheirStory" in page
    assert "Family Archive" not in page


def test_manager_sees_only_their_partners_audit_entries(login, manager_a, partner_a, partner_b):
    page = login(manager_a).get(reverse("audit")).content.decode()
    assert "TheirStory" in page
    assert "Family Archive" not in page


def test_engineer_sees_every_partner_but_no_edit_forms(login, engineer, partner_a, partner_b):
    client = login(engineer)
    assert "Family Archive" in client.get(reverse("partners:list")).content.decode()
    page = client.get(reverse("partners:detail", args=[partner_a.slug])).content.decode()
    assert "Save limits" not in page and "Pause imports" not in page


def test_manager_cannot_change_ceilings_through_the_limits_form(login, manager_a, partner_a):
    before = Partner.objects.get(pk=partner_a.pk).ceilings()
    login(manager_a).post(
        reverse("partners:limits", args=[partner_a.slug]),
        {
            "limits-ceiling_max_concurrent_uploads": "999",
            "limits-max_concurrent_uploads": "10",
            "limits-requests_per_minute": "100",
            "limits-max_bytes_in_flight": "1 GB",
            "limits-daily_upload_bytes": "1 TB",
            "limits-reason": "sneaky",
            "limits-revision": partner_a.revision,
        },
    )
    assert Partner.objects.get(pk=partner_a.pk).ceilings() == before


def test_admin_is_open_to_ops_only(login, ops_user, manager_a):
    assert login(ops_user).get(reverse("admin:index")).status_code == 200
    response = login(manager_a).get(reverse("admin:index"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_get_on_a_change_endpoint_changes_nothing_and_goes_back_to_the_partner(login, ops_user, partner_a):
    response = login(ops_user).get(reverse("partners:pause", args=[partner_a.slug]))
    assert response.status_code == 302 and response["Location"] == partner_a.get_absolute_url()
    assert not partner_a.paused


def test_saving_partner_settings_keeps_an_inactive_manager(login, ops_user, manager_a, partner_a):
    manager_a.is_active = False  # on leave: may come back, still the partner's manager
    manager_a.save()
    client = login(ops_user)
    page = client.get(reverse("partners:detail", args=[partner_a.slug]))
    form = page.context["settings_form"]
    data = {
        form.add_prefix(name): form[name].value()
        for name in ("name", "slug", "client_id", "priority", "managers", "revision")
    }
    data["settings-contact_email"] = "new@example.org"
    data["settings-reason"] = "new contact"
    response = client.post(reverse("partners:settings", args=[partner_a.slug]), data)
    assert response.status_code == 302
    assert list(Partner.objects.get(pk=partner_a.pk).managers.all()) == [manager_a]
    assert "mara-manager-a (inactive)" in page.content.decode()
