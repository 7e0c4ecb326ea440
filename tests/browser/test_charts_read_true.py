"""Charts a New York browser reads during an incident: UTC times said on the axis, bytes in
decimal units, and two events of one minute not drawn on one another."""

import re
from datetime import UTC, datetime

import pytest
from django.utils import timezone

from monitoring import metrics
from monitoring.models import Rollup
from partners import changes
from tests.browser.conftest import ARTIFACTS
from tests.factories import PASSWORD, seed_fleet_metrics

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TIMELINE_MARKERS = """() => document.querySelector('#chart-cpu').data
    .filter((trace) => trace.meta === 'timeline').flatMap((trace) => trace.y)"""

HOVER_BOX = """() => {
    const layer = document.querySelector('#chart-cpu .hoverlayer');
    if (!layer || !layer.textContent) return null;
    const chart = document.querySelector('#chart-cpu').getBoundingClientRect(), label = layer.getBoundingClientRect();
    return {left: label.left - chart.left, right: chart.right - label.right, text: layer.textContent};
}"""


def test_a_new_york_browser_reads_utc_times_decimal_bytes_and_separate_events(
    browser, live_server, ops_user, partner_a
):
    seed_fleet_metrics(servers=2, minutes=10, clients=())
    minute = metrics.bucket_start(timezone.now(), 60)
    Rollup.objects.create(metric=metrics.BYTES_IN_FLIGHT, subject="client:theirstory-sdk", resolution_seconds=60,
        bucket_start=minute, sample_count=1, total=1_500_000_000, minimum=0, maximum=0)  # fmt: skip
    changes.change_limits(partner_a, ops_user, {"max_concurrent_uploads": 8}, "CPU high", None)
    changes.pause(partner_a, ops_user, "runaway import", None)  # the same minute

    context = browser.new_context(
        timezone_id="America/New_York", viewport={"width": 1440, "height": 900}, bypass_csp=True
    )
    page = context.new_page()
    page.goto(f"{live_server.url}/?range=1h")
    page.fill("#id_username", ops_user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/(\?range=1h)?$"))
    page.goto(f"{live_server.url}/?range=1h")
    assert page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == "America/New_York"
    page.wait_for_function("document.querySelector('#chart-cpu').dataset.timelineEvents >= 2")
    page.wait_for_selector("#chart-bytes .ytick")

    # The axis ends at the UTC hour, not New York's, and says it is UTC.
    end = page.evaluate("document.querySelector('#chart-cpu').layout.xaxis.range[1]")
    assert end.startswith(datetime.now(UTC).strftime("%Y-%m-%d %H")), end
    assert "UTC" in page.text_content("#chart-cpu .g-xtitle")
    # Bytes in decimal units: "1.5 GB", never "1.5G" (a billion).
    ticks = page.locator("#chart-bytes .ytick text").all_text_contents()
    assert any(tick.endswith(" GB") for tick in ticks), ticks
    assert not [tick for tick in ticks if re.search(r"\dG$", tick)], ticks
    hover = page.evaluate("document.querySelector('#chart-bytes').data.map((t) => [t.name, t.customdata])")
    assert ["TheirStory", ["1.5 GB"]] in hover, hover
    # A limit change and a pause in the same minute: two markers, one below the other.
    heights = page.evaluate(TIMELINE_MARKERS)
    assert len(heights) == 2 and len(set(heights)) == 2, heights
    page.screenshot(path=str(ARTIFACTS / "overview-new-york-1440.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(500)
    # The CPU hover at its first and its last point stays inside the chart, its values in %.
    page.locator("#chart-cpu").scroll_into_view_if_needed()  # below banners and tiles on a phone
    box = page.locator("#chart-cpu .nsewdrag").first.bounding_box()
    first_x = page.evaluate("""() => { const el = document.querySelector('#chart-cpu');
        return el._fullLayout.xaxis.d2p(el.data[2].x[0]); }""")
    for x in (box["x"] + first_x, box["x"] + box["width"] - 3):
        page.mouse.move(x, box["y"] + box["height"] / 2)
        page.wait_for_timeout(200)
        hover = page.evaluate(HOVER_BOX)
        assert hover and hover["left"] >= 0 and hover["right"] >= 0 and "%" in hover["text"], hover
    page.screenshot(path=str(ARTIFACTS / "overview-new-york-390.png"), full_page=True)
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {value: true, configurable: true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    page.wait_for_timeout(300)
    context.close()
