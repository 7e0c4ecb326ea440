"""The timeline: limit changes, pauses, scaling and alerts, merged newest first, with its JSON endpoint."""

import uuid
from datetime import timedelta

import pytest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from alerting.models import Alert, AlertRule, AlertState
from dashboard import timeline
from fleet import scaling
from fleet.models import ScalingGroup
from monitoring import metrics
from partners import changes
from tests.factories import T0, drive

pytestmark = pytest.mark.django_db
CPU = ("cpu_percent", "fleet")
URL = reverse("chart-timeline")


@pytest.fixture
def group():
    return ScalingGroup.objects.create(name="uploads", backend=ScalingGroup.Backend.LOCAL, desired_capacity=2)


def fire_and_resolve_fleet_cpu_alert() -> Alert:
    """Fleet CPU high: 90 % for six minutes fires it, then 50 % resolves it (the seeded rule)."""
    drive(0, [90] * 6 + [50] * 6, CPU)
    alert = Alert.objects.get(rule__slug="fleet-cpu-high", subject=metrics.FLEET)
    assert alert.state == AlertState.RESOLVED
    return alert


def everything(user=None, limit=timeline.DEFAULT_LIMIT):
    return timeline.events(T0 - timedelta(days=1), timezone.now() + timedelta(days=1), limit=limit, user=user)


def make_one_of_each(ops_user, partner, group):
    changes.change_limits(partner, ops_user, {"max_concurrent_uploads": 4}, "fleet is hot", None)
    changes.pause(partner, ops_user, "backlog import paused", None)
    scaling.request_scaling(group, None, 2, 4, "CPU above target", uuid.uuid4())
    changes.set_effective_limits(partner, 2, None, "fleet CPU above its target")
    return fire_and_resolve_fleet_cpu_alert()


def test_each_kind_is_on_the_timeline_newest_first(ops_user, engineer, partner_a, group):
    alert = make_one_of_each(ops_user, partner_a, group)

    events = everything()

    assert [e.at for e in events] == sorted((e.at for e in events), reverse=True)
    titles = {e.title: e for e in events}
    limits = titles["Limits changed: TheirStory"]
    assert (limits.kind, limits.actor, limits.link) == ("limits", ops_user.username, partner_a.get_absolute_url())
    assert "Concurrent uploads: 16 → 4" in limits.detail and "fleet is hot" in limits.detail
    assert titles["Imports paused: TheirStory"].kind == "pause"
    assert titles["Imports paused: TheirStory"].detail == "backlog import paused"
    scaled = titles["Scale out uploads: 2 → 4"]
    assert (scaled.kind, scaled.actor, scaled.link) == ("scaling", "policy", reverse("fleet:groups"))
    effective = titles["Effective limits changed for load: TheirStory"]
    assert (effective.kind, effective.actor) == ("limits", "system")
    firing = titles["Fleet CPU high firing [fleet]"]
    resolved = titles["Fleet CPU high resolved [fleet]"]
    assert (firing.kind, firing.at, resolved.at) == ("alert", alert.fired_at, alert.closed_at)
    assert resolved.link == reverse("alerting:alerts")


def test_pause_all_and_resume_all_are_fleet_wide_pause_events(ops_user):
    changes.pause(None, ops_user, "incident", None)
    changes.resume(None, ops_user, "over")

    events = everything()

    assert [(e.kind, e.title) for e in events] == [
        ("pause", "All partner imports resumed: all partners"),
        ("pause", "All partner imports paused: all partners"),
    ]
    assert events[0].link == reverse("partners:controls")


def test_the_range_keeps_only_events_inside_it(ops_user, engineer, partner_a, group):
    alert = make_one_of_each(ops_user, partner_a, group)

    only_alerts = timeline.events(alert.fired_at, alert.closed_at)
    assert [e.title for e in only_alerts] == ["Fleet CPU high resolved [fleet]", "Fleet CPU high firing [fleet]"]
    just_after_firing = timeline.events(alert.fired_at + timedelta(seconds=1), alert.closed_at)
    assert [e.title for e in just_after_firing] == ["Fleet CPU high resolved [fleet]"]
    after_alerts = timeline.events(alert.closed_at + timedelta(seconds=1), timezone.now() + timedelta(days=1))
    assert "alert" not in {e.kind for e in after_alerts} and len(after_alerts) >= 4


def test_the_limit_keeps_the_newest(ops_user, partner_a):
    for concurrency in (10, 9, 8):
        changes.change_limits(partner_a, ops_user, {"max_concurrent_uploads": concurrency}, "step", None)
        partner_a.refresh_from_db()

    events = everything(limit=2)

    assert [e.detail.split(" — ")[0] for e in events] == ["Concurrent uploads: 9 → 8", "Concurrent uploads: 10 → 9"]


def test_a_manager_sees_own_and_fleet_wide_events_only(ops_user, manager_a, engineer, partner_a, partner_b, group):
    changes.change_limits(partner_a, ops_user, {"max_concurrent_uploads": 4}, "mine", None)
    changes.change_limits(partner_b, ops_user, {"max_concurrent_uploads": 4}, "not mine", None)
    changes.pause(None, ops_user, "incident", None)
    scaling.request_scaling(group, ops_user, 2, 3, "more room", uuid.uuid4())
    fire_and_resolve_fleet_cpu_alert()
    rule = AlertRule.objects.get(slug="fleet-cpu-high")
    for client_id in (partner_a.client_id, partner_b.client_id):
        Alert.objects.create(
            rule=rule,
            subject=metrics.client_subject(client_id),
            state=AlertState.FIRING,
            pending_since=T0,
            fired_at=T0,
            evaluated_at=T0,
        )

    seen = {e.title: e for e in everything(user=manager_a)}

    assert "Limits changed: TheirStory" in seen and "Limits changed: Family Archive" not in seen
    assert "All partner imports paused: all partners" in seen
    assert seen["All partner imports paused: all partners"].link == ""  # the controls are for ops
    assert seen["Scale out uploads: 2 → 3"].link == ""  # the fleet page is for ops and engineers
    assert "Fleet CPU high firing [fleet]" in seen
    assert "Fleet CPU high firing [client:theirstory-sdk]" in seen
    assert "Fleet CPU high firing [client:fas-importer]" not in seen
    assert "Limits changed: Family Archive" in {e.title for e in everything(user=engineer)}


# The JSON endpoint, polled with the CPU chart.


def test_the_endpoint_lists_events_in_the_charts_range(login, ops_user, partner_a, django_assert_max_num_queries):
    changes.change_limits(partner_a, ops_user, {"max_concurrent_uploads": 4}, "fleet is hot", None)
    client = login(ops_user)

    with django_assert_max_num_queries(8):
        response = client.get(URL, {"range": "1h"})

    assert response.status_code == 200
    body = response.json()
    assert body["range"] == "1h" and body["kinds"]["limits"] == timeline.KIND_COLORS["limits"]
    limits = [e for e in body["events"] if e["title"] == "Limits changed: TheirStory"]
    assert len(limits) == 1 and limits[0]["kind"] == "limits" and limits[0]["color"] == body["kinds"]["limits"]
    assert isinstance(limits[0]["at_ms"], int) and limits[0]["link"] == partner_a.get_absolute_url()


def test_the_endpoint_hides_other_partners_from_a_manager(login, ops_user, manager_b, partner_a, partner_b):
    changes.change_limits(partner_a, ops_user, {"max_concurrent_uploads": 4}, "fleet is hot", None)
    changes.change_limits(partner_b, ops_user, {"max_concurrent_uploads": 4}, "fleet is hot", None)

    titles = [e["title"] for e in login(manager_b).get(URL).json()["events"]]

    assert "Limits changed: TheirStory" not in titles and "Limits changed: Family Archive" in titles


def test_a_bad_range_is_a_400_that_names_the_choices(login, ops_user):
    response = login(ops_user).get(URL, {"range": "2y"})

    assert response.status_code == 400
    assert "range must be one of" in response.json()["error"]


def test_the_endpoint_needs_a_login(client):
    response = client.get(URL)

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# The list partial, for the risk page: {% include "partials/timeline.html" %} with timeline_events.


def test_the_partial_lists_events_with_time_kind_title_actor_and_link(ops_user, partner_a, group):
    changes.change_limits(partner_a, ops_user, {"max_concurrent_uploads": 4}, "<b>hot</b>", None)
    scaling.request_scaling(group, None, 2, 4, "CPU above target", uuid.uuid4())
    events = everything()

    html = render_to_string("partials/timeline.html", {"timeline_events": events})

    rows = html.split('<tr data-kind="')[1:]
    assert [row.split('"')[0] for row in rows] == [e.kind for e in events]
    limits_row = next(row for row in rows if "Limits changed: TheirStory" in row)
    assert events[-1].at.strftime("%Y-%m-%d %H:%M:%S") in html
    assert 'class="badge kind-limits"' in limits_row and ops_user.username in limits_row
    assert f'href="{partner_a.get_absolute_url()}"' in limits_row
    assert "&lt;b&gt;hot&lt;/b&gt;" in limits_row and "<b>hot</b>" not in html
    assert "Scale out uploads: 2 → 4" in html and "policy" in html


def test_the_partial_says_when_nothing_happened():
    assert "Nothing changed in this period." in render_to_string("partials/timeline.html", {"timeline_events": []})
