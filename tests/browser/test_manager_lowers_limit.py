"""A partner manager lowers TheirStory's concurrent uploads in the browser."""

import pytest

from core.models import AuditEntry
from partners.models import UploadLimitRow
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_manager_lowers_concurrent_uploads_and_sees_it_in_the_audit_log(
    page, live_server, log_in, screenshot, manager_a, partner_a, partner_b
):
    version_before = UploadLimitRow.objects.get(client_id="theirstory-sdk").version
    log_in(manager_a.username, PASSWORD)

    page.click("text=Partners")
    assert page.locator("table.partners").inner_text().count("TheirStory") == 1
    assert "Family Archive" not in page.content()
    page.click("text=TheirStory")
    page.fill("#id_limits-max_concurrent_uploads", "6")
    page.fill("#id_limits-reason", "CPU at 95% during the backlog import")
    screenshot("partner-detail-before-save")
    page.click("text=Save limits")

    page.wait_for_selector(".message.success")
    assert "Limits of TheirStory saved" in page.inner_text(".messages")
    screenshot("partner-detail-after-save")

    page.click("nav >> text=Audit log")
    row = page.locator("table.audit tbody tr").first
    assert "mara-manager-a" in row.inner_text()
    assert "16 → 6" in row.inner_text()
    assert "CPU at 95% during the backlog import" in row.inner_text()
    screenshot("audit-log")

    published = UploadLimitRow.objects.get(client_id="theirstory-sdk")
    assert published.max_concurrent_uploads == 6
    assert published.version > version_before
    assert AuditEntry.objects.filter(actor=manager_a).count() == 1


def test_a_manager_sees_a_field_error_above_the_ceiling(page, live_server, log_in, screenshot, manager_a, partner_a):
    log_in(manager_a.username, PASSWORD)
    page.goto(f"{live_server.url}/partners/{partner_a.slug}/")
    page.fill("#id_limits-max_bytes_in_flight", "500 GB")
    page.fill("#id_limits-reason", "need more")
    page.click("text=Save limits")
    error = page.wait_for_selector("#id_limits-max_bytes_in_flight-error")
    assert "Above the ceiling set by ops (100 GB)" in error.inner_text()
    screenshot("partner-detail-ceiling-error")
    assert UploadLimitRow.objects.get(client_id="theirstory-sdk").max_bytes_in_flight == 40 * 10**9


def test_a_refused_save_on_a_phone_shows_the_error_with_the_focus_on_its_field_and_reloads_to_the_page(
    page, live_server, log_in, screenshot, manager_a, partner_a
):
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(manager_a.username, PASSWORD)
    page.goto(f"{live_server.url}{partner_a.get_absolute_url()}")
    page.fill("#id_limits-max_concurrent_uploads", "5000")  # above the ceiling ops set
    page.fill("#id_limits-reason", "more, please")
    page.click("text=Save limits")
    page.wait_for_selector(".has-error")
    focused = page.evaluate("() => document.activeElement.id")
    assert focused == "id_limits-max_concurrent_uploads"
    assert page.locator("#id_limits-max_concurrent_uploads").is_visible()
    box = page.locator("#id_limits-max_concurrent_uploads").bounding_box()
    assert 0 <= box["y"] <= 844, "the refused field is on screen"
    screenshot("phone-refused-limit")
    assert "/limits/" in page.url, "the refused form is shown at the form's address"
    page.goto(page.url)  # opening that address again (a reload without resending) is the partner page
    assert page.url.split("?")[0].endswith(partner_a.get_absolute_url())
    assert page.locator("#id_limits-max_concurrent_uploads").is_visible()
