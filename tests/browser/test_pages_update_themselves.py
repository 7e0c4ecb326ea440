"""The alerts and overview pages follow an incident without a reload: a new alert appears on
the open alerts page, and the title's and the nav's open-alert count follow, on both."""

import pytest
from django.utils import timezone

from alerting.models import Alert, AlertRule, AlertState
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def fire(slug: str) -> Alert:
    now = timezone.now()
    rule = AlertRule.objects.get(slug=slug)
    return Alert.objects.create(
        rule=rule, subject="fleet", state=AlertState.FIRING, pending_since=now, evaluated_at=now
    )


def hide(page) -> None:
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {value: true, configurable: true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")


def test_the_alerts_page_and_the_overview_follow_a_new_alert(page, live_server, log_in, screenshot, ops_user):
    log_in(ops_user.username, PASSWORD)
    page.goto(f"{live_server.url}/alerts/")
    page.wait_for_function("window.UploadOpsLive && window.UploadOpsLive.isPolling()")
    page.evaluate("window.__marker = 'same page'")
    assert not page.title().startswith("(")

    fire("fleet-cpu-high")
    page.locator("#open-alerts", has_text="Fleet CPU high").wait_for(timeout=20_000)
    assert page.title().startswith("(1) Alerts")
    assert page.inner_text("header nav a[href$='/alerts/'] .badge").startswith("1")
    assert page.evaluate("window.__marker") == "same page"
    screenshot("alerts-live")
    hide(page)
    assert page.evaluate("window.UploadOpsLive.isPolling()") is False

    page.goto(f"{live_server.url}/")
    page.wait_for_selector("#tile-alerts")
    fire("uploads-timing-out")
    page.wait_for_function("document.title.startsWith('(2) ')", timeout=15_000)
    page.locator("header nav a[href$='/alerts/'] .badge", has_text="2").wait_for()
    assert page.inner_text("#tile-alerts .big") == "2"
    hide(page)
    page.wait_for_function("!window.UploadOpsCharts.isPolling()")
    page.wait_for_timeout(300)
