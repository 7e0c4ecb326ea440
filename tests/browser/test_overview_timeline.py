"""The overview's CPU chart marks a limit change made in the dashboard with a line and hover text."""

from datetime import UTC, datetime

import pytest

from core.models import AuditEntry
from partners import changes
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TIMELINE_SHAPES = """() => (document.querySelector('#chart-cpu').layout.shapes || [])
    .filter((shape) => (shape.name || '').startsWith('timeline:'))
    .map((shape) => ({kind: shape.name.slice(9), x: shape.x0, color: shape.line.color}))"""
TIMELINE_HOVER_TEXT = """() => document.querySelector('#chart-cpu').data
    .filter((trace) => trace.meta === 'timeline').flatMap((trace) => trace.hovertext)"""


def test_the_cpu_chart_shows_a_limit_change_as_an_annotation(
    page, live_server, log_in, screenshot, stop_polling, ops_user, partner_a
):
    changes.change_limits(partner_a, ops_user, {"max_concurrent_uploads": 4}, "CPU at <b>92 %</b>", None)
    changed_at_ms = int(AuditEntry.objects.get(action="limits.changed").created_at.timestamp() * 1000)

    log_in(ops_user.username, PASSWORD)
    page.wait_for_function("() => document.querySelector('#chart-cpu').dataset.timelineEvents >= 1")

    shapes = page.evaluate(TIMELINE_SHAPES)
    # Drawn at the UTC moment, written as Plotly reads it without a zone (charts.js).
    changed_at = datetime.fromtimestamp(changed_at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    assert {"kind": "limits", "x": changed_at, "color": "#2557d6"} in shapes
    hover = page.evaluate(TIMELINE_HOVER_TEXT)
    assert any("Limits changed: TheirStory" in text and "16 → 4" in text for text in hover)
    assert any("CPU at &lt;b&gt;92 %&lt;/b&gt;" in text for text in hover), "a reason is text, not markup"
    screenshot("overview-timeline")

    # A change made while the page is open appears with the chart's next poll.
    changes.pause(partner_a, ops_user, "backlog import paused", None)
    page.wait_for_function(f"() => ({TIMELINE_SHAPES})().some((shape) => shape.kind === 'pause')", timeout=15_000)
    stop_polling()
