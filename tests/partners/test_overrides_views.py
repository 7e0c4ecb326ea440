"""The override form, the "end now" button and the lists on the partner and controls pages."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEntry
from partners import overrides
from partners.models import Override, OverrideState, PartnerAudit, UploadLimitRow


def form_data(partner, ends_at=None, reason="backlog weekend", **limits):
    ends_at = ends_at or timezone.now() + timedelta(hours=4)
    data = {
        "override-reason": reason,
        "override-revision": partner.revision,
        "override-ends_at": ends_at.strftime("%Y-%m-%dT%H:%M"),
    }
    values = {**partner.limit_values(), **limits}
    for name, value in values.items():
        data[f"override-{name}"] = "" if value is None else str(value)
    return data


def published(client_id="theirstory-sdk") -> UploadLimitRow:
    return UploadLimitRow.objects.get(client_id=client_id)


def test_manager_raises_a_limit_of_their_partner_until_tonight(login, manager_a, partner_a):
    response = login(manager_a).post(
        reverse("partners:override", args=[partner_a.slug]), form_data(partner_a, max_concurrent_uploads=35)
    )
    assert response.status_code == 302
    assert published().max_concurrent_uploads == 35
    override = Override.objects.get(partner=partner_a)
    assert override.created_by == manager_a and override.replaced == {"max_concurrent_uploads": 16}
    page = login(manager_a).get(reverse("partners:detail", args=[partner_a.slug]))
    html = page.content.decode()
    assert "restores 16" in html and "backlog weekend" in html and "End now" in html
    assert f'href="#override-{override.pk}" class="badge paused"' in html, "the limit in force is marked"


@pytest.mark.parametrize(
    "change,field,message",
    [
        ({"ends_at": timezone.now() - timedelta(hours=1)}, "ends_at", "must be in the future"),
        ({"ends_at": timezone.now() + timedelta(days=31)}, "ends_at", "At most 30 days"),
        ({"max_concurrent_uploads": 41}, "max_concurrent_uploads", "Above the ceiling"),
        ({}, "__all__", "limits in force already"),
        ({"reason": ""}, "reason", "Say why"),
    ],
)
def test_bad_input_gives_a_field_error_and_changes_nothing(login, manager_a, partner_a, change, field, message):
    version = published().version
    response = login(manager_a).post(
        reverse("partners:override", args=[partner_a.slug]), form_data(partner_a, **change)
    )
    assert response.status_code == 400
    assert message in " ".join(response.context["override_form"].errors[field])
    assert published().version == version and not Override.objects.exists()


def test_ops_may_go_above_the_ceiling(login, ops_user, partner_a):
    response = login(ops_user).post(
        reverse("partners:override", args=[partner_a.slug]), form_data(partner_a, max_concurrent_uploads=60)
    )
    assert response.status_code == 302 and published().max_concurrent_uploads == 60


def test_a_limit_already_under_an_override_is_refused_on_its_field(login, manager_a, partner_a):
    login(manager_a).post(
        reverse("partners:override", args=[partner_a.slug]), form_data(partner_a, max_concurrent_uploads=30)
    )
    partner_a.refresh_from_db()
    response = login(manager_a).post(
        reverse("partners:override", args=[partner_a.slug]), form_data(partner_a, max_concurrent_uploads=35)
    )
    assert response.status_code == 400
    assert "Already under override" in response.context["override_form"].errors["max_concurrent_uploads"][0]
    assert published().max_concurrent_uploads == 30


@pytest.mark.parametrize("who,status", [("manager_b", 404), ("engineer", 403), (None, 302)])
def test_others_cannot_start_an_override(login, request, partner_a, who, status):
    user = request.getfixturevalue(who) if who else None
    response = login(user).post(
        reverse("partners:override", args=[partner_a.slug]), form_data(partner_a, max_concurrent_uploads=30)
    )
    assert response.status_code == status
    if status == 302:
        assert "/login" in response["Location"]
    assert not Override.objects.exists()


def started(partner, actor, **limits):
    override, _ = overrides.start_override(partner, actor, limits, timezone.now() + timedelta(hours=2), "test", None)
    return override


def test_end_now_restores_at_once_and_is_audited(login, manager_a, partner_a):
    override = started(partner_a, manager_a, burst=45)
    response = login(manager_a).post(
        reverse("partners:override-end", args=[partner_a.slug, override.pk]), {"end-reason": "done early"}
    )
    assert response.status_code == 302
    assert published().burst == 20
    entry = AuditEntry.objects.filter(partner=partner_a).first()
    assert entry.action == PartnerAudit.OVERRIDE_ENDED and entry.actor == manager_a
    override.refresh_from_db()
    assert override.state == OverrideState.ENDED_EARLY


@pytest.mark.parametrize("who,status", [("manager_b", 404), ("engineer", 403)])
def test_others_cannot_end_an_override(login, request, manager_a, partner_a, who, status):
    override = started(partner_a, manager_a, burst=45)
    response = login(request.getfixturevalue(who)).post(
        reverse("partners:override-end", args=[partner_a.slug, override.pk])
    )
    assert response.status_code == status
    assert published().burst == 45


def test_an_override_of_another_partner_is_not_found_under_this_one(login, ops_user, partner_a, partner_b):
    override = started(partner_b, ops_user, max_concurrent_uploads=12)
    response = login(ops_user).post(reverse("partners:override-end", args=[partner_a.slug, override.pk]))
    assert response.status_code == 404
    assert published("fas-importer").max_concurrent_uploads == 12


def test_the_controls_page_lists_active_overrides_a_manager_sees_only_theirs(
    login, ops_user, manager_a, partner_a, partner_b
):
    started(partner_a, manager_a, max_concurrent_uploads=30)
    started(partner_b, ops_user, max_concurrent_uploads=12)
    ops_page = login(ops_user).get(reverse("partners:controls")).content.decode()
    assert "TheirStory" in ops_page and "Family Archive" in ops_page and "End now" in ops_page
    manager_page = login(manager_a).get(reverse("partners:controls")).content.decode()
    assert "TheirStory" in manager_page and "Family Archive" not in manager_page


def test_timed_pauses_are_listed_among_the_active_overrides(login, ops_user, manager_a, partner_a):
    from partners import changes

    changes.pause(partner_a, manager_a, "CPU at 98%", timezone.now() + timedelta(hours=1))
    changes.pause(None, ops_user, "incident 42", timezone.now() + timedelta(hours=2))
    page = login(manager_a).get(reverse("partners:controls")).content.decode()
    assert "CPU at 98%" in page and "incident 42" in page and "All partners" in page
    detail = login(manager_a).get(reverse("partners:detail", args=[partner_a.slug])).content.decode()
    assert "Imports paused; they resume at the end" in detail


def test_end_now_on_a_timed_pause_resumes_imports(login, manager_a, partner_a):
    from partners import changes

    changes.pause(partner_a, manager_a, "CPU at 98%", timezone.now() + timedelta(hours=1))
    override = Override.objects.get(partner=partner_a)
    login(manager_a).post(reverse("partners:override-end", args=[partner_a.slug, override.pk]))
    assert not published().paused
    override.refresh_from_db()
    assert override.state == OverrideState.ENDED_EARLY


def test_end_now_on_a_finished_timed_pause_leaves_a_newer_pause_alone(login, manager_a, partner_a):
    from partners import changes

    changes.pause(partner_a, manager_a, "first", timezone.now() + timedelta(hours=1))
    first = Override.objects.get(partner=partner_a)
    changes.resume(partner_a, manager_a, "over")
    changes.pause(partner_a, manager_a, "until further notice", None)
    login(manager_a).post(reverse("partners:override-end", args=[partner_a.slug, first.pk]))
    assert published().paused and published().pause_reason == "until further notice"
