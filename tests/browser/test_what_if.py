"""Ops fills the what-if form in the browser, sees the projection, and applies its limits."""

import pytest

from core.models import AuditEntry
from partners.models import PartnerAudit, UploadLimitRow
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_ops_projects_an_upload_and_applies_the_limits(page, live_server, log_in, screenshot, ops_user, partner_a):
    log_in(ops_user.username, PASSWORD)
    page.goto(f"{live_server.url}/risk/what-if/?partner={partner_a.slug}")
    assert page.input_value("#id_max_concurrent_uploads") == "16", "prefilled from the partner's limits"
    assert page.input_value("#id_max_bytes_in_flight") == "40 GB"
    page.fill("#id_files", "40")
    page.select_option("#id_size_mix", "explicit")
    page.fill("#id_smallest_file", "200 MB")
    page.fill("#id_largest_file", "1 GB")
    page.fill("#id_servers", "2")
    page.fill("#id_max_concurrent_uploads", "12")
    page.click("button:has-text('Project')")

    result = page.wait_for_selector("#what-if-result")
    text = result.inner_text()
    assert "TheirStory's 40 files" in text and "would take about" in text and "on 2 servers" in text
    assert "Fleet CPU would average" in text and "Timeout risk" in text
    page.wait_for_selector("#what-if-cpu-chart .main-svg")
    assert int(page.get_attribute("#what-if-cpu-chart", "data-points")) > 1
    screenshot("what-if-result")

    page.fill("#id_apply-reason", "Two servers and 12 at a time keep CPU in check")
    page.click("button:has-text('Apply these limits to TheirStory')")
    page.wait_for_selector(".message.success")
    assert "Limits of TheirStory set from the what-if" in page.inner_text(".messages")
    assert UploadLimitRow.objects.get(client_id="theirstory-sdk").max_concurrent_uploads == 12
    entry = AuditEntry.objects.filter(action=PartnerAudit.LIMITS_CHANGED).latest("id")
    assert entry.reason.startswith("Two servers and 12 at a time keep CPU in check — what-if: 40 files")


def test_bad_input_shows_field_errors(page, live_server, log_in, ops_user, partner_a):
    log_in(ops_user.username, PASSWORD)
    page.goto(f"{live_server.url}/risk/what-if/?partner={partner_a.slug}")
    page.select_option("#id_size_mix", "explicit")
    page.fill("#id_smallest_file", "12 parsecs")
    page.click("button:has-text('Project')")
    error = page.wait_for_selector("#id_smallest_file-error")
    assert error.inner_text()
    assert page.query_selector("#what-if-result") is None
