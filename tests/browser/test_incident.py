"""The incident the overview is for, in the browser: TheirStory's backlog at concurrency 40 has
the fleet at full CPU; the critical alert has fired (real evaluations over the minutes); ops see
it and who is doing it in one look, lower TheirStory's concurrency from the top-consumers row
until the backlog is done, and acknowledge the alert. At 1440 and 390 px."""

import json
import urllib.request
from datetime import timedelta

import pytest
from django.utils import timezone

from alerting import evaluation
from alerting.models import Alert, AlertState
from monitoring.models import UploadServer
from monitoring.rollups import write_minute_value
from partners.models import UploadLimitRow
from tests.factories import PASSWORD, report_body

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def saturated_fleet(live_server, servers: int = 2) -> None:
    """Servers report TheirStory's 40 uploads at 100 % CPU through the report API, and the
    last minutes' fleet CPU stood at 97 %, evaluated minute by minute as the worker does."""
    now = timezone.now()
    for minute in range(8, 0, -1):
        moment = now - timedelta(minutes=minute)
        write_minute_value("cpu_percent", "fleet", moment - timedelta(minutes=1), 97.0)
        evaluation.run(moment)
    for index in range(servers):
        server = UploadServer(name=f"upload-{index + 1}", report_interval_seconds=5)
        token = server.issue_token()
        server.save()
        clients = {
            "theirstory-sdk": {
                "uploads_in_progress": 20,
                "bytes_in_flight": 40 * 10**9,
                "admitted": 3,
                "throttled": 0,
                "timed_out": 0,
                "completed": 1,
                "failed": 0,
            }
        }
        body = report_body(server.name, 1, cpu_percent=100.0, clients=clients)
        request = urllib.request.Request(
            f"{live_server.url}/api/v1/reports",
            json.dumps(body).encode(),
            {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        assert urllib.request.urlopen(request).status == 202


@pytest.mark.parametrize("width", [1440, 390])
def test_ops_see_the_fire_and_who_is_doing_it_lower_it_and_acknowledge(
    page, live_server, log_in, screenshot, stop_polling, ops_user, engineer, partner_a, width
):
    saturated_fleet(live_server)
    fired = Alert.objects.get(rule__slug="fleet-cpu-high")
    assert fired.state == AlertState.FIRING
    page.set_viewport_size({"width": width, "height": 900 if width > 400 else 844})
    log_in(ops_user.username, PASSWORD)

    # One look: the title and the alert tile say it burns, the top consumer is TheirStory.
    assert page.title().startswith("(")
    page.wait_for_selector("#top-consumers tr[data-consumer='TheirStory']")
    assert "critical" in page.inner_text("#tile-alerts")
    row = page.locator("#top-consumers tr[data-consumer='TheirStory']")
    assert "40" in row.inner_text()
    screenshot(f"incident-{width}-overview")
    stop_polling()

    # One click from lowering it: temporary limits until the backlog is done.
    row.locator("text=Lower limits").click()
    page.wait_for_selector("#id_override-max_concurrent_uploads")
    ends_at = timezone.now() + timedelta(hours=4)
    page.fill("#id_override-max_concurrent_uploads", "8")
    page.fill("#id_override-ends_at", ends_at.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#id_override-reason", "fleet CPU at 100 %: TheirStory's backlog")
    page.click("text=Apply until the end time")
    page.wait_for_selector(".message.success")
    assert UploadLimitRow.objects.get(client_id="theirstory-sdk").max_concurrent_uploads == 8
    screenshot(f"incident-{width}-lowered")

    # The alert, first in the list, acknowledged.
    page.goto(f"{live_server.url}/alerts/")
    first = page.locator("table.alerts tbody tr").first
    assert "Fleet CPU high" in first.inner_text() and "Firing" in first.inner_text()
    first.locator("text=Acknowledge").click()
    page.wait_for_selector(".message.success")
    fired.refresh_from_db()
    assert fired.acknowledged_by == ops_user
    screenshot(f"incident-{width}-acknowledged")
