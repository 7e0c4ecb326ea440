"""Every page as every role, at a desktop and a phone width: nothing makes the page scroll
sideways at 390 px (tables scroll inside their card, the nav wraps). Screenshots of each land
in test-artifacts/ for a person to look at."""

import pytest

from tests.factories import PASSWORD, make_server, seed_fleet_metrics

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}
EVERYONE = ["/", "/partners/", "/partners/theirstory/", "/audit/"]
OPS_AND_ENGINEERS = ["/controls/", "/fleet/", "/servers/", "/risk/", "/risk/what-if/", "/alerts/"]


def visit(page, live_server, path: str) -> int:
    page.goto(f"{live_server.url}{path}")
    page.wait_for_timeout(300)  # charts draw after the first poll
    return page.evaluate("document.documentElement.scrollWidth")


# Engineers see the pages ops see (without the forms): ops and a manager cover every layout.
@pytest.mark.parametrize("who", ["ops", "manager"])
def test_no_page_scrolls_sideways_on_a_phone(
    page, live_server, log_in, screenshot, stop_polling, who, ops_user, engineer, manager_a, partner_a
):
    seed_fleet_metrics(servers=3, minutes=20)
    make_server("upload-warming")
    user = {"ops": ops_user, "engineer": engineer, "manager": manager_a}[who]
    log_in(user.username, PASSWORD)
    paths = EVERYONE + (OPS_AND_ENGINEERS if who != "manager" else [])
    too_wide = {}
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        for path in paths:
            width = visit(page, live_server, path)
            name = path.strip("/").replace("/", "-") or "overview"
            screenshot(f"{who}-{viewport['width']}-{name}")
            if width > viewport["width"]:
                too_wide[f"{path} at {viewport['width']}"] = width
    if page.evaluate("!!window.UploadOpsCharts"):
        stop_polling()
    assert not too_wide, f"pages wider than the screen: {too_wide}"
