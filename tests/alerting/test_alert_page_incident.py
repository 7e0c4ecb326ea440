"""The alerts page during an incident: the most urgent first, values in their units,
acknowledge only what fired, silence prefilled from a row, and the count on every page."""

from datetime import timedelta

import pytest

from alerting.models import Alert, AlertState
from tests.factories import T0, make_server, tick

pytestmark = pytest.mark.django_db
FLEET = ("cpu_percent", "fleet")


def hot_fleet_with_saturated_servers():
    """The fleet critical firing (hot for 7 minutes), then two servers saturated (warnings)."""
    for minute in range(7):
        tick(T0 + timedelta(minutes=minute), {FLEET: 90})
    for minute in range(7, 10):
        tick(T0 + timedelta(minutes=minute), {FLEET: 96, ("cpu_percent", "server:s1"): 99})
    last = {FLEET: 96, ("cpu_percent", "server:s1"): 99, ("cpu_percent", "server:s2"): 97, ("timed_out", "fleet"): 3}
    tick(T0 + timedelta(minutes=10), last)


def test_a_pending_critical_sorts_above_firing_warnings_with_units_and_ack_only_when_firing(client, ops_user, engineer):
    hot_fleet_with_saturated_servers()
    client.force_login(ops_user)
    page = client.get("/alerts/").content.decode()
    open_part = page[: page.index("<h2>Rules</h2>")]
    # Firing critical, then the pending critical, then the firing warning, then the pending one.
    order = [open_part.index(text) for text in ("Fleet CPU high", "Uploads timing out", "server:s1", "server:s2")]
    assert order == sorted(order)
    assert Alert.objects.get(rule__slug="uploads-timing-out").state == AlertState.PENDING
    assert "96 %" in open_part and "&gt; 80 %" in open_part and "&gt; 95 %" in open_part
    pending = Alert.objects.get(subject="server:s2")
    assert pending.state == AlertState.PENDING
    assert f"/alerts/{pending.id}/acknowledge/" not in page
    firing_warning = Alert.objects.get(subject="server:s1")
    assert f"/alerts/{firing_warning.id}/acknowledge/" in page
    assert "email held back: a critical of the same cause fires" in open_part


def test_acknowledging_a_pending_alert_is_refused_and_says_why(client, engineer):
    make_server("upload-1", seen_at=T0)
    for minute in range(3):
        tick(T0 + timedelta(minutes=minute), {FLEET: 90})
    pending = Alert.objects.get(rule__slug="fleet-cpu-high")
    client.force_login(engineer)
    answer = client.post(f"/alerts/{pending.id}/acknowledge/", follow=True)
    pending.refresh_from_db()
    assert pending.acknowledged_at is None
    assert "only a firing alert is acknowledged" in answer.content.decode()


def test_silence_from_an_alert_row_opens_the_form_filled_in(client, ops_user):
    make_server("upload-1", seen_at=T0 - timedelta(minutes=5))
    tick(T0)
    alert = Alert.objects.get(rule__slug="server-silent")
    client.force_login(ops_user)
    page = client.get(f"/alerts/?silence={alert.id}").content.decode()
    assert f'href="?silence={alert.id}#silence-form"' in page
    assert 'value="server:upload-1"' in page
    assert f'<option value="{alert.rule_id}" selected>' in page
    assert client.get("/alerts/?silence=not-a-number").status_code == 200


def test_every_page_shows_the_open_alert_count_in_nav_title_and_favicon(client, ops_user, manager_a):
    make_server("upload-1", seen_at=T0 - timedelta(minutes=5))
    make_server("upload-2", seen_at=T0 - timedelta(minutes=5))
    tick(T0)
    client.force_login(ops_user)
    page = client.get("/partners/").content.decode()
    assert "<title>(2) " in page and "favicon-firing.svg" in page
    assert '<span class="badge firing"' in page
    client.force_login(manager_a)  # a manager gets no alerts and sees no count
    page = client.get("/partners/").content.decode()
    assert "<title>(" not in page and "favicon.svg" in page
