"""Ops opens the risk page, reads the register, and follows it to a what-if projection."""

import pytest

from tests.factories import PASSWORD, make_partner

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_ops_reads_the_register_and_projects_a_what_if(page, live_server, log_in, screenshot, ops_user, partner_a):
    make_partner("Open Archive", ops_user)  # no limits: an open risk
    log_in(ops_user.username, PASSWORD)
    page.click("nav a:has-text('Risk')")
    page.wait_for_selector("#risk-register")
    rows = page.query_selector_all("#risk-register tbody tr")
    assert len(rows) == 8
    uncapped = page.inner_text("#risk-partner-without-limits")
    assert "open" in uncapped and "No limit at all on: Open Archive." in uncapped
    assert "ok" in page.inner_text("#risk-servers-behind-config")
    assert "Unbounded: Open Archive" in page.inner_text("#overcommitment")
    screenshot("risk-page")

    page.click("a:has-text('What-if: project a partner')")
    page.wait_for_selector("#id_files")
    page.select_option("#id_partner", label="TheirStory")
    page.fill("#id_files", "40")
    page.select_option("#id_size_mix", "explicit")
    page.fill("#id_smallest_file", "200 MB")
    page.fill("#id_largest_file", "1 GB")
    page.fill("#id_servers", "2")
    page.click("button:has-text('Project')")
    text = page.wait_for_selector("#what-if-result").inner_text()
    assert "TheirStory's 40 files" in text and "would take about" in text and "Fleet CPU would average" in text
