"""A partner manager raises TheirStory's concurrent uploads until tonight, then ends it early."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import AuditEntry
from partners.models import PartnerAudit, UploadLimitRow
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def published_concurrent() -> int:
    return UploadLimitRow.objects.get(client_id="theirstory-sdk").max_concurrent_uploads


def test_manager_raises_a_limit_until_a_set_time_and_ends_it_early(
    page, live_server, log_in, screenshot, manager_a, partner_a
):
    log_in(manager_a.username, PASSWORD)
    page.goto(f"{live_server.url}/partners/{partner_a.slug}/")
    ends_at = timezone.now() + timedelta(hours=6)
    page.fill("#id_override-max_concurrent_uploads", "32")
    page.fill("#id_override-ends_at", ends_at.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#id_override-reason", "weekend backlog import")
    page.click("text=Apply until the end time")

    page.wait_for_selector(".message.success")
    row = page.locator("#overrides table.overrides tbody tr").first
    assert "Concurrent uploads: 32 → restores 16" in row.inner_text()
    assert ends_at.strftime("%Y-%m-%d %H:%M") in row.inner_text()
    assert "mara-manager-a" in row.inner_text()
    screenshot("partner-temporary-limits")
    assert published_concurrent() == 32

    row.locator("text=End now").click()
    page.wait_for_selector(".message.success")
    assert "No active overrides" in page.inner_text("#overrides")
    assert published_concurrent() == 16
    actions = list(AuditEntry.objects.filter(partner=partner_a).values_list("action", flat=True)[:2])
    assert actions == [PartnerAudit.OVERRIDE_ENDED, PartnerAudit.OVERRIDE_STARTED]


def test_an_end_time_in_the_past_is_a_field_error(page, live_server, log_in, manager_a, partner_a):
    log_in(manager_a.username, PASSWORD)
    page.goto(f"{live_server.url}/partners/{partner_a.slug}/")
    page.fill("#id_override-max_concurrent_uploads", "32")
    page.fill("#id_override-ends_at", "2001-01-01T00:00")
    page.fill("#id_override-reason", "oops")
    page.click("text=Apply until the end time")
    error = page.wait_for_selector("#id_override-ends_at-error")
    assert "must be in the future" in error.inner_text()
    assert published_concurrent() == 16
