"""Changing a partner's limits: human units, ceilings, bad input, audit and publication."""

import pytest
from django.urls import reverse

from core.models import AuditEntry
from partners.models import Partner, PartnerAudit, UploadLimitRow
from tests.factories import limits_post


def snapshot(partner):
    row = UploadLimitRow.objects.get(client_id=partner.client_id)
    return (
        Partner.objects.get(pk=partner.pk).limit_values(),
        AuditEntry.objects.count(),
        (row.version, row.max_concurrent_uploads, row.max_bytes_in_flight, row.burst),
    )


def test_manager_lowers_concurrency_and_the_table_row_follows(login, manager_a, partner_a):
    old_version = UploadLimitRow.objects.get(client_id="theirstory-sdk").version
    response = login(manager_a).post(
        reverse("partners:limits", args=[partner_a.slug]), limits_post(partner_a, max_concurrent_uploads="4")
    )
    assert response.status_code == 302
    row = UploadLimitRow.objects.get(client_id="theirstory-sdk")
    assert row.max_concurrent_uploads == 4
    assert row.version > old_version
    entry = AuditEntry.objects.filter(partner=partner_a).first()
    assert entry.action == PartnerAudit.LIMITS_CHANGED
    assert entry.actor == manager_a
    assert entry.before == {"max_concurrent_uploads": 16}
    assert entry.after == {"max_concurrent_uploads": 4}
    assert entry.reason == "backlog import"


def test_byte_limits_accept_and_show_human_units(login, ops_user, partner_a):
    client = login(ops_user)
    client.post(
        reverse("partners:limits", args=[partner_a.slug]),
        limits_post(partner_a, max_bytes_in_flight="1.5 GB", daily_upload_bytes="2 TiB"),
    )
    partner_a.refresh_from_db()
    assert partner_a.max_bytes_in_flight == 1_500_000_000
    assert partner_a.daily_upload_bytes == 2 * 1024**4
    page = client.get(reverse("partners:detail", args=[partner_a.slug])).content.decode()
    assert 'value="1.5 GB"' in page
    assert 'value="2 TiB"' in page


def test_saving_the_form_unchanged_changes_nothing(login, ops_user, partner_a):
    before = snapshot(partner_a)
    response = login(ops_user).post(reverse("partners:limits", args=[partner_a.slug]), limits_post(partner_a))
    assert response.status_code == 302
    assert snapshot(partner_a) == before


def test_emptying_a_field_removes_the_limit(login, ops_user, partner_a):
    login(ops_user).post(
        reverse("partners:limits", args=[partner_a.slug]), limits_post(partner_a, daily_upload_bytes="")
    )
    assert UploadLimitRow.objects.get(client_id="theirstory-sdk").daily_upload_bytes is None


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("max_concurrent_uploads", "-3", "at least 1"),
        ("requests_per_minute", "0", "at least 1"),
        ("requests_per_minute", "lots", "Enter a whole number"),
        ("max_bytes_in_flight", "-5 GB", "Enter a size"),
        ("max_bytes_in_flight", "5 gigglebytes", "Unknown unit"),
        ("daily_upload_bytes", "1.5 B", "whole number of bytes"),
        ("max_bytes_in_flight", "GB", "Enter a size"),
        ("max_concurrent_uploads", "41", "Above the ceiling"),
        ("max_bytes_in_flight", "101 GB", "Above the ceiling"),
        ("daily_upload_bytes", "", "Cannot be unlimited"),
        ("reason", "", "Say why"),
    ],
)
def test_manager_bad_input_gives_a_field_error_and_changes_nothing(login, manager_a, partner_a, field, value, message):
    before = snapshot(partner_a)
    response = login(manager_a).post(
        reverse("partners:limits", args=[partner_a.slug]), limits_post(partner_a, **{field: value})
    )
    assert response.status_code == 400
    assert message in " ".join(response.context["limits_form"].errors[field])
    assert snapshot(partner_a) == before


def test_burst_without_a_rate_is_refused(login, ops_user, partner_a):
    before = snapshot(partner_a)
    response = login(ops_user).post(
        reverse("partners:limits", args=[partner_a.slug]), limits_post(partner_a, requests_per_minute="", burst="10")
    )
    assert response.status_code == 400
    assert "needs a requests-per-minute rate" in response.context["limits_form"].errors["burst"][0]
    assert snapshot(partner_a) == before


def test_ops_may_set_limits_above_the_ceiling(login, ops_user, partner_a):
    response = login(ops_user).post(
        reverse("partners:limits", args=[partner_a.slug]), limits_post(partner_a, max_concurrent_uploads="100")
    )
    assert response.status_code == 302
    assert UploadLimitRow.objects.get(client_id="theirstory-sdk").max_concurrent_uploads == 100


def test_the_form_shows_the_ceiling_to_a_manager(login, manager_a, partner_a):
    page = login(manager_a).get(reverse("partners:detail", args=[partner_a.slug])).content.decode()
    assert "At most 40 (ceiling set by ops)" in page
    assert "At most 100 GB (ceiling set by ops)" in page
