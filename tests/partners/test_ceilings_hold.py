"""Ceilings hold at every moment: a path that would publish a limit above the partner's ceiling
as it is now (an override ending or expiring, a what-if applied, load-coupled limits growing
back) publishes the ceiling instead, and its audit entry says so."""

from datetime import timedelta
from unittest import mock
from urllib.parse import urlencode

import pytest
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEntry
from dashboard.views import APPLY_REASON
from partners import changes, overrides
from partners.models import Partner, PartnerAudit, UploadLimitRow


def published(field: str, client_id: str = "theirstory-sdk"):
    return getattr(UploadLimitRow.objects.get(client_id=client_id), field)


@pytest.fixture
def lowered_during_an_override(manager_a, ops_user, partner_a):
    """The walk: the manager sets rpm 300 (the ceiling) and a temporary 50; ops lower the
    ceiling to 100, which is accepted because 50 is in force."""
    changes.change_limits(partner_a, manager_a, {"requests_per_minute": 300}, "full speed", partner_a.revision)
    override, _ = overrides.start_override(
        partner_a,
        manager_a,
        {"requests_per_minute": 50},
        timezone.now() + timedelta(hours=1),
        "slow down for an hour",
        partner_a.revision,
    )
    changes.change_partner(partner_a, ops_user, {"ceiling_requests_per_minute": 100}, "fleet is hot", None)
    assert published("requests_per_minute") == 50
    return override


def test_ending_an_override_by_hand_publishes_the_lowered_ceiling(manager_a, partner_a, lowered_during_an_override):
    overrides.end_override(lowered_during_an_override, manager_a, "done")
    assert published("requests_per_minute") == 100
    assert Partner.objects.get(pk=partner_a.pk).requests_per_minute == 100
    entry = AuditEntry.objects.filter(action=PartnerAudit.OVERRIDE_ENDED).get()
    assert entry.after == {"requests_per_minute": 100}
    assert "Held at the ceiling set by ops: requests_per_minute 300 → 100." in entry.reason


def test_an_override_that_expires_publishes_the_lowered_ceiling(partner_a, lowered_during_an_override):
    later = timezone.now() + timedelta(hours=2)
    with mock.patch("django.utils.timezone.now", return_value=later):
        assert overrides.end_due_overrides(later) == 1
    assert published("requests_per_minute") == 100
    entry = AuditEntry.objects.filter(action=PartnerAudit.OVERRIDE_ENDED).get()
    assert entry.actor is None and "Held at the ceiling" in entry.reason


def test_an_override_ending_within_the_ceiling_restores_as_before(manager_a, partner_a):
    override, _ = overrides.start_override(
        partner_a, manager_a, {"requests_per_minute": 50}, timezone.now() + timedelta(hours=1), "slow", None
    )
    overrides.end_override(override, manager_a)
    assert published("requests_per_minute") == 120
    assert "ceiling" not in AuditEntry.objects.filter(action=PartnerAudit.OVERRIDE_ENDED).get().reason


def test_a_what_if_applied_above_a_ceiling_publishes_the_ceiling(login, ops_user, partner_a):
    # The what-if proposes 600 requests a minute; TheirStory's ceiling is 300.
    query = urlencode(
        {
            "partner": partner_a.slug,
            "files": 50,
            "size_mix": "photos",
            "servers": 2,
            "max_concurrent_uploads": 12,
            "max_bytes_in_flight": "2 GB",
            "requests_per_minute": 600,
        }
    )
    data = {
        "apply-what_if": query,
        "apply-revision": partner_a.revision,
        "apply-requests_per_minute": 600,
        "apply-burst": partner_a.burst,
        "apply-max_concurrent_uploads": 12,
        "apply-max_bytes_in_flight": "2 GB",
        "apply-daily_upload_bytes": partner_a.daily_upload_bytes,
        "apply-reason": APPLY_REASON,
    }
    response = login(ops_user).post(reverse("what-if-apply"), data)
    assert response.status_code == 302
    assert published("requests_per_minute") == 300
    assert published("max_concurrent_uploads") == 12
    entry = AuditEntry.objects.filter(action=PartnerAudit.LIMITS_CHANGED).get()
    assert entry.after["requests_per_minute"] == 300
    assert "Held at the ceiling set by ops: requests_per_minute 600 → 300." in entry.reason


def test_load_coupled_limits_grow_back_only_up_to_the_ceiling(partner_a):
    # A configured limit above the ceiling (stored before ceilings held): growing back stops there.
    Partner.objects.filter(pk=partner_a.pk).update(max_concurrent_uploads=40, ceiling_max_concurrent_uploads=20)
    changes.set_effective_limits(partner_a, 10, None, "fleet CPU above 70 %")
    assert published("max_concurrent_uploads") == 10
    changes.set_effective_limits(partner_a, None, None, "fleet CPU below 60 %: growing back")
    assert published("max_concurrent_uploads") == 20
    entry = AuditEntry.objects.filter(action=PartnerAudit.EFFECTIVE_LIMITS_CHANGED).first()
    assert entry.after == {"effective_max_concurrent_uploads": 20}
    assert "Held at the ceiling set by ops: max_concurrent_uploads 40 → 20." in entry.reason
