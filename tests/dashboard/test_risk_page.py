"""The risk page: who may see it, and what it shows."""

import pytest
from django.test import override_settings
from django.urls import reverse

from tests.factories import make_partner

pytestmark = pytest.mark.django_db


def test_the_risk_page_needs_login(client):
    response = client.get(reverse("risk"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("who", ["ops_user", "engineer"])
def test_ops_and_engineers_see_the_register_and_the_what_if_link(login, request, who, partner_a):
    page = login(request.getfixturevalue(who)).get(reverse("risk")).content.decode()
    assert "Risk register" in page and 'id="risk-single-server"' in page
    assert 'id="risk-max-capacity-too-low"' in page and "Headroom now" in page
    assert f'href="{reverse("what-if")}"' in page
    assert ">Risk</a>" in page, "in the nav"


def test_a_partner_manager_is_refused_like_on_the_fleet_page(login, manager_a, partner_a, partner_b):
    client = login(manager_a)
    response = client.get(reverse("risk"))
    assert response.status_code == 403
    assert client.get(reverse("fleet:groups")).status_code == 403, "the same treatment as the fleet page"
    assert "Family Archive" not in response.content.decode()
    assert ">Risk</a>" not in client.get(reverse("overview")).content.decode()


def test_the_page_shows_the_overcommitment_warning_only_above_the_ratio(login, ops_user, partner_a):
    client = login(ops_user)
    # No live server: the configured 2 servers carry 16 uploads and 16 GB; TheirStory's caps are 16 and 40 GB.
    with override_settings(RISK_OVERCOMMIT_WARNING_RATIO=3.0):
        assert 'id="overcommit-warning"' not in client.get(reverse("risk")).content.decode()
    with override_settings(RISK_OVERCOMMIT_WARNING_RATIO=2.0):
        page = client.get(reverse("risk")).content.decode()
    assert 'id="overcommit-warning"' in page and "2.50×" in page


def test_an_uncapped_partner_shows_as_unbounded(login, ops_user):
    make_partner("Open Archive", ops_user)
    page = login(ops_user).get(reverse("risk")).content.decode()
    assert "Unbounded: Open Archive has no concurrency or bytes-in-flight cap." in page
    assert 'data-status="open"' in page


def test_the_risk_page_lists_the_timeline_newest_first(login, ops_user, partner_a):
    from partners import changes

    changes.pause(partner_a, ops_user, "risk page timeline: pause", None)
    changes.resume(partner_a, ops_user, "risk page timeline: resume")
    page = login(ops_user).get(reverse("risk")).content.decode()
    timeline = page[page.index('id="timeline"') :]
    rows = [row.split('data-kind="')[1].split('"')[0] for row in timeline.split("<tr ")[1:]]
    assert rows[:2] == ["pause", "pause"]
    assert timeline.index("risk page timeline: resume") < timeline.index("risk page timeline: pause")


def test_bytes_in_flight_add_up_in_decimal_units_as_on_partner_pages(login, ops_user):
    from django.utils import timezone

    from monitoring.models import UploadServer
    from tests.factories import make_server

    for name, size in (("upload-1", 100 * 10**9), ("upload-2", 5 * 10**9)):
        make_server(name, seen_at=timezone.now())
        UploadServer.objects.filter(name=name).update(last_bytes_in_flight=size)
    html = login(ops_user).get(reverse("risk")).content.decode()
    assert "105 GB" in html and "97.8 GB" not in html
