"""The overview draws its charts and shows a report posted while it is open, without a reload."""

import json
import urllib.request

import pytest

from monitoring import servers
from tests.factories import PASSWORD, report_body

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def post_report(live_server, token: str, body: dict) -> int:
    request = urllib.request.Request(
        f"{live_server.url}/api/v1/reports",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def test_the_overview_draws_and_a_new_report_appears_without_reload(page, live_server, log_in, screenshot, ops_user):
    _, token_1 = servers.register_server(ops_user, "upload-1", "test")
    _, token_2 = servers.register_server(ops_user, "upload-2", "test")
    assert post_report(live_server, token_1, report_body("upload-1", cpu_percent=35.0)) == 202

    api_requests = []
    page.on("request", lambda request: api_requests.append(request.url) if "/api/" in request.url else None)
    log_in(ops_user.username, PASSWORD)
    page.wait_for_selector("#chart-cpu .main-svg")
    page.locator("#servers tr[data-server='upload-1']", has_text="35.0 %").wait_for()
    # One request a poll brings all five charts, the timeline and the servers table.
    assert api_requests and all("/api/overview?range=" in url for url in api_requests), api_requests
    warming = page.inner_text("#servers tr[data-server='upload-2']")
    assert "waiting for its first report" in warming and "silent" not in warming, "registered, never reported"
    assert int(page.get_attribute("#chart-cpu", "data-points")) >= 1
    for chart in ("uploads", "bytes", "outcomes", "queues"):
        page.wait_for_selector(f"#chart-{chart} .main-svg")
    page.evaluate("window.__marker = 'same page'")

    assert post_report(live_server, token_2, report_body("upload-2", cpu_percent=91.0)) == 202
    row = page.locator("#servers tr[data-server='upload-2']", has_text="91.0 %")
    row.wait_for(timeout=15_000)
    assert "live" in row.inner_text()
    assert page.evaluate("window.__marker") == "same page", "the page must not have reloaded"
    page.wait_for_function("() => Number(document.querySelector('#chart-cpu').dataset.points) >= 2")
    assert all("/api/overview?range=" in url for url in api_requests), api_requests
    screenshot("overview-live")


def test_polling_stops_while_the_tab_is_hidden(page, live_server, log_in, ops_user, stop_polling):
    log_in(ops_user.username, PASSWORD)
    page.wait_for_selector("#chart-cpu .main-svg")
    page.wait_for_function("() => window.UploadOpsCharts.isPolling()")
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {value: true, configurable: true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    assert page.evaluate("window.UploadOpsCharts.isPolling()") is False
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {value: false, configurable: true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    page.wait_for_function("() => window.UploadOpsCharts.isPolling()")
    stop_polling()


def test_the_live_refresh_agrees_with_itself_after_resume_all_elsewhere(
    page, live_server, log_in, ops_user, partner_a, stop_polling
):
    from partners import changes

    changes.pause(None, ops_user, "database failover", None)
    log_in(ops_user.username, PASSWORD)
    page.wait_for_selector("#pause-all-banner", state="visible")
    assert page.inner_text("#tile-paused .big") == "1"

    # Another session resumes all and pauses one partner: the open page follows, all three parts.
    changes.resume(None, ops_user, "failover done")
    changes.pause(partner_a, ops_user, "runaway import", None)
    page.wait_for_selector("#pause-all-banner", state="hidden", timeout=15_000)
    link = page.locator("#paused-now a", has_text=partner_a.name)
    link.wait_for()
    assert link.get_attribute("href") == partner_a.get_absolute_url()
    assert page.inner_text("#tile-paused .big") == "1"
    assert "All partner imports" not in page.inner_text("#paused-now")
    stop_polling()
