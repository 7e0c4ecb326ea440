"""Ops open the alerts page from the nav, see a firing alert and acknowledge it."""

from datetime import timedelta

import pytest

from alerting import actions
from alerting.models import Alert, AlertState
from alerting.rules import seed_default_rules
from tests.factories import PASSWORD, drive, rule

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_ops_see_a_firing_alert_and_acknowledge_it(page, live_server, log_in, screenshot, ops_user, engineer):
    seed_default_rules()
    drive(0, [92] * 6, ("cpu_percent", "fleet"))
    drive(0, [99] * 3, ("cpu_percent", "server:upload-3"))
    actions.create_silence(ops_user, rule("queue-deep"), "queue:Video", "backfill running", timedelta(hours=2))
    drive(6, [40] * 3, ("cpu_percent", "server:upload-3"))
    log_in(ops_user.username, PASSWORD)

    page.click("nav >> text=Alerts")
    alert = Alert.objects.get(rule__slug="fleet-cpu-high", state=AlertState.FIRING)
    row = page.locator(f"#alert-{alert.id}")
    assert "Fleet CPU high" in row.inner_text() and "Firing" in row.inner_text()
    screenshot("alerts-page")
    row.locator("text=Acknowledge").click()
    page.wait_for_selector(".message.success")
    assert "olivia-ops" in page.locator(f"#alert-{alert.id}").inner_text()
    screenshot("alerts-page-acknowledged")
    assert Alert.objects.get(id=alert.id).acknowledged_by == ops_user
