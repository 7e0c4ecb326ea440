"""Two staff editing the same partner from stale forms: the second save is refused."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEntry
from partners.models import FleetSettings, Partner, UploadLimitRow
from tests.factories import limits_post


def test_the_second_save_from_a_stale_form_is_refused_and_overwrites_nothing(client, ops_user, manager_a, partner_a):
    opened_revision = partner_a.revision  # both open the form now
    client.force_login(ops_user)
    client.post(reverse("partners:limits", args=[partner_a.slug]), limits_post(partner_a, max_concurrent_uploads="10"))
    client.force_login(manager_a)
    response = client.post(
        reverse("partners:limits", args=[partner_a.slug]),
        {**limits_post(partner_a, max_concurrent_uploads="30"), "limits-revision": opened_revision},
    )

    assert response.status_code == 400
    message = " ".join(response.context["limits_form"].non_field_errors())
    assert "Changed by olivia-ops at" in message and "since you opened it" in message
    assert Partner.objects.get(pk=partner_a.pk).max_concurrent_uploads == 10
    assert UploadLimitRow.objects.get(client_id="theirstory-sdk").max_concurrent_uploads == 10
    assert AuditEntry.objects.filter(actor=manager_a).count() == 0


def test_settings_and_limits_forms_share_the_revision(client, ops_user, partner_a):
    opened_revision = partner_a.revision
    client.force_login(ops_user)
    from partners import changes

    changes.change_partner(partner_a, ops_user, {"contact_email": "new@example.org"}, "t", opened_revision)
    response = client.post(
        reverse("partners:limits", args=[partner_a.slug]),
        {**limits_post(partner_a, burst="5"), "limits-revision": opened_revision},
    )
    assert response.status_code == 400
    assert Partner.objects.get(pk=partner_a.pk).burst == 20


def test_stale_default_limits_are_refused(client, ops_user):
    from partners import changes

    changes.change_default_limits(ops_user, {"requests_per_minute": 100}, "first", None)
    client.force_login(ops_user)
    response = client.post(
        reverse("partners:controls-defaults"),
        {"defaults-requests_per_minute": "900", "defaults-reason": "second", "defaults-revision": 0},
    )
    assert response.status_code == 400
    assert "since you opened it" in response.content.decode()
    assert FleetSettings.load().requests_per_minute == 100


def _without_revision(data: dict) -> dict:
    return {name: value for name, value in data.items() if not name.endswith("-revision")}


@pytest.mark.parametrize(
    "url_name, prefix, data",
    [
        ("partners:limits", "limits", lambda partner: limits_post(partner, max_concurrent_uploads="30")),
        (
            "partners:shadow",
            "shadow",
            lambda partner: {"shadow-shadow_max_concurrent_uploads": "8", "shadow-reason": "try"},
        ),
        (
            "partners:override",
            "override",
            lambda partner: (
                {f"override-{name[len('limits-') :]}": value for name, value in limits_post(partner).items()}
                | {"override-max_concurrent_uploads": "4"}
            ),
        ),
    ],
)
def test_a_partner_form_without_its_revision_is_refused_with_a_field_error(
    client, ops_user, partner_a, url_name, prefix, data
):
    # Leaving the revision out used to skip the stale-edit check: last write won.
    posted = _without_revision(data(partner_a))
    posted.setdefault(f"{prefix}-reason", "no revision")
    posted.setdefault(f"{prefix}-ends_at", (timezone.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    before = (Partner.objects.get(pk=partner_a.pk).revision, AuditEntry.objects.count())
    client.force_login(ops_user)
    response = client.post(reverse(url_name, args=[partner_a.slug]), posted)
    assert response.status_code == 400
    form = response.context[f"{prefix}_form"]
    assert "Missing" in " ".join(form.errors["revision"])
    assert (Partner.objects.get(pk=partner_a.pk).revision, AuditEntry.objects.count()) == before


def test_partner_settings_without_their_revision_are_refused(client, ops_user, partner_a):
    client.force_login(ops_user)
    response = client.post(
        reverse("partners:settings", args=[partner_a.slug]),
        {
            "settings-name": "Renamed",
            "settings-slug": partner_a.slug,
            "settings-client_id": partner_a.client_id,
            "settings-priority": partner_a.priority,
            "settings-reason": "rename",
        },
    )
    assert response.status_code == 400
    assert "revision" in response.context["settings_form"].errors
    assert Partner.objects.get(pk=partner_a.pk).name == "TheirStory"


def test_default_limits_without_their_revision_are_refused(client, ops_user):
    client.force_login(ops_user)
    response = client.post(
        reverse("partners:controls-defaults"), {"defaults-requests_per_minute": "900", "defaults-reason": "x"}
    )
    assert response.status_code == 400
    assert "revision" in response.context["defaults_form"].errors
    assert FleetSettings.load().requests_per_minute is None
