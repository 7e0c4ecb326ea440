"""Error answers say what happened and where to go, inside the dashboard's own page."""

import pytest

pytestmark = pytest.mark.django_db


def test_a_manager_on_an_ops_page_gets_the_nav_and_the_reason(client, manager_a):
    client.force_login(manager_a)
    answer = client.get("/fleet/")
    page = answer.content.decode()
    assert answer.status_code == 403
    assert '<header class="topbar">' in page and "<main>" in page
    assert "Only ops and engineers can see this." in page and "Nothing was changed" in page


@pytest.mark.parametrize(
    ("path", "page"),
    [
        ("/servers/register/", "/servers/"),
        ("/controls/pause-all/", "/controls/"),
        ("/partners/theirstory/limits/?range=15m", "/partners/theirstory/?range=15m"),
    ],
)
def test_reloading_a_form_address_goes_back_to_its_page(client, ops_user, partner_a, path, page):
    client.force_login(ops_user)
    answer = client.get(path)
    assert answer.status_code == 302 and answer["Location"] == page


def test_get_on_a_form_address_without_a_page_explains_instead_of_an_empty_405(client, ops_user):
    client.force_login(ops_user)
    answer = client.get("/alerts/7/acknowledge/")
    assert answer.status_code == 405 and answer["Allow"] == "POST"
    page = answer.content.decode()
    assert "This address is for a form" in page and '<header class="topbar">' in page


def test_the_api_answers_json_for_wrong_methods_and_missing_addresses(client, ops_user):
    client.force_login(ops_user)
    answer = client.get("/api/v1/reports")
    assert answer.status_code == 405 and "not allowed" in answer.json()["error"]
    missing = client.get("/api/no-such-thing")
    assert missing.status_code == 404 and "no such address" in missing.json()["error"]


def test_an_unknown_page_is_a_page_with_the_nav(client, ops_user, settings):
    settings.DEBUG = False
    client.force_login(ops_user)
    answer = client.get("/partners/no-such-partner/")
    assert answer.status_code == 404
    assert "There is nothing here" in answer.content.decode()
