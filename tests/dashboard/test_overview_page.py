"""The overview page itself: what it shows before its first live refresh, and that the refresh
(/api/overview's "status") carries the same facts, so the two never disagree."""

import re

from django.urls import reverse

from partners import changes


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
