"""The overview page itself: what it shows before its first live refresh, and that the refresh
(/api/overview's "status") carries the same facts, so the two never disagree."""

import json
import re

from django.urls import reverse
from django.utils import timezone

from alerting.models import Alert, AlertRule, AlertState
from dashboard import consumers
from monitoring import servers
from partners import changes
from tests.factories import report_body


def tile_count(html: str, tile_id: str) -> str:
    match = re.search(rf'id="{tile_id}"><span class="big">([^<]*)</span>', html)
    assert match, f"no tile {tile_id}"
    return match.group(1)


def test_during_pause_all_the_paused_tile_counts_every_partner(login, ops_user, partner_a, partner_b):
    changes.pause(None, ops_user, "database failover", None)
    client = login(ops_user)
    html = client.get(reverse("overview")).content.decode()
    assert tile_count(html, "tile-paused") == "2"
    assert 'id="pause-all-banner"' in html and 'id="pause-all-banner" hidden' not in html
    status = client.get(reverse("overview-poll"), {"range": "15m"}).json()["status"]
    assert status["paused_count"] == 2 and status["all_partners_paused"] is True


def test_after_resume_all_the_banner_is_hidden_and_the_list_keeps_the_partners_link(
    login, ops_user, partner_a, partner_b
):
    changes.pause(None, ops_user, "database failover", None)
    changes.pause(partner_a, ops_user, "runaway import", None)
    changes.resume(None, ops_user, "failover done")
    client = login(ops_user)
    html = client.get(reverse("overview")).content.decode()
    assert 'id="pause-all-banner" hidden' in html
    assert tile_count(html, "tile-paused") == "1"
    assert f'<a href="{partner_a.get_absolute_url()}">{partner_a.name}</a>: runaway import' in html
    status = client.get(reverse("overview-poll"), {"range": "15m"}).json()["status"]
    assert status["all_partners_paused"] is False and status["paused_count"] == 1
    assert status["paused_partners"] == [
        {"name": partner_a.name, "url": partner_a.get_absolute_url(), "reason": "runaway import", "resume_at": None}
    ]


def post_report(client, token: str, body: dict) -> None:
    response = client.post(
        "/api/v1/reports", json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 202, response.content


def client_figures(uploads: int, bytes_in_flight: int) -> dict:
    return {"uploads_in_progress": uploads, "bytes_in_flight": bytes_in_flight, "admitted": 0, "throttled": 0,
            "timed_out": 0, "completed": 0, "failed": 0}  # fmt: skip


def test_top_consumers_name_partners_and_direct_users_beside_their_limits(
    client, login, ops_user, manager_a, partner_a, partner_b, django_assert_max_num_queries
):
    _, token_1 = servers.register_server(ops_user, "upload-1", "test")
    _, token_2 = servers.register_server(ops_user, "upload-2", "test")
    clients_1 = {"theirstory-sdk": client_figures(10, 30 * 10**9), "*": client_figures(3, 2 * 10**9)}
    clients_2 = {"theirstory-sdk": client_figures(5, 6 * 10**9), "stranger-app": client_figures(1, 10**9)}
    post_report(client, token_1, report_body("upload-1", clients=clients_1))
    post_report(client, token_2, report_body("upload-2", clients=clients_2))

    ops = login(ops_user)
    status = ops.get(reverse("fleet-status")).json()
    top = status["top_consumers"]
    assert [row["name"] for row in top] == ["TheirStory", consumers.DIRECT_USERS]  # Family Archive is idle
    theirstory, direct = top
    assert (theirstory["uploads_in_progress"], theirstory["bytes_in_flight"]) == (15, 36 * 10**9)
    assert (theirstory["max_concurrent_uploads"], theirstory["max_bytes_in_flight"]) == (16, 40 * 10**9)
    assert theirstory["lower_url"] == partner_a.get_absolute_url() + "#overrides"
    assert theirstory["pause_url"] == partner_a.get_absolute_url() + "#imports"
    # "*" and a client id without a row are the direct users, held to the defaults.
    assert (direct["uploads_in_progress"], direct["bytes_in_flight"]) == (4, 3 * 10**9)
    assert direct["lower_url"].endswith("/controls/#defaults") and direct["pause_url"] is None

    # A manager sees their own partner only, never the direct users.
    manager_top = login(manager_a).get(reverse("fleet-status")).json()["top_consumers"]
    assert [row["name"] for row in manager_top] == ["TheirStory"]
    with django_assert_max_num_queries(13):  # as many with two servers and partners as with none
        ops.get(reverse("fleet-status"))


def test_the_overview_shows_the_alert_state_and_the_poll_carries_it(login, ops_user, manager_a, partner_a):
    cpu_rule = AlertRule.objects.get(slug="fleet-cpu-high")
    now = timezone.now()
    Alert.objects.create(rule=cpu_rule, subject="fleet", state=AlertState.FIRING, pending_since=now, evaluated_at=now)
    html = login(ops_user).get(reverse("overview")).content.decode()
    assert 'id="tile-alerts"' in html and "open alerts, worst critical" in html
    alerts = login(ops_user).get(reverse("fleet-status")).json()["alerts"]
    assert alerts == {"open_alert_count": 1, "firing_alert_count": 1, "worst_alert_severity": "critical"}
    assert login(manager_a).get(reverse("fleet-status")).json()["alerts"] is None
    assert 'id="tile-alerts"' not in login(manager_a).get(reverse("overview")).content.decode()


def test_one_partner_is_not_one_partners(login, manager_a, partner_a, partner_b):
    html = login(manager_a).get(reverse("overview")).content.decode()
    assert '<span class="big">1</span><span>partner</span>' in html
