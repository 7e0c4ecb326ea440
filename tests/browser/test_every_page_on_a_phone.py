"""Every page as every role, at a desktop and a phone width: nothing makes the page scroll
sideways at 390 px (tables scroll inside their card, the nav wraps), and axe-core finds no
serious or critical violation. Screenshots of each land in test-artifacts/ for a person to look at."""

import pytest

from tests.factories import PASSWORD, make_server, seed_fleet_metrics

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}
EVERYONE = ["/", "/partners/", "/partners/theirstory/", "/audit/"]
OPS_AND_ENGINEERS = ["/controls/", "/fleet/", "/servers/", "/risk/", "/risk/what-if/", "/alerts/", "/people/"]


def visit(page, live_server, path: str) -> int:
    page.goto(f"{live_server.url}{path}")
    page.wait_for_timeout(300)  # charts draw after the first poll
    return page.evaluate("document.documentElement.scrollWidth")


def widest_elements(page, width: int) -> list[str]:
    """What sticks out: the innermost elements reaching past the right edge (for the message)."""
    return page.evaluate(
        """(width) => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > width + 1 && ![...e.children].some(
                c => c.getBoundingClientRect().right > width + 1))
            .slice(0, 4).map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : '')
                + ' in ' + (e.closest('section, table, form')?.className || '?'))""",
        width,
    )


@pytest.mark.parametrize("who", ["ops", "engineer", "manager"])
def test_every_page_fits_a_phone_and_passes_axe(
    page,
    live_server,
    log_in,
    screenshot,
    stop_polling,
    accessibility_violations,
    who,
    ops_user,
    engineer,
    manager_a,
    partner_a,
):
    seed_fleet_metrics(servers=3, minutes=20)
    make_server("upload-warming")
    user = {"ops": ops_user, "engineer": engineer, "manager": manager_a}[who]
    log_in(user.username, PASSWORD)
    # A manager also meets the 403 page; everyone the 404 and 405 pages.
    paths = EVERYONE + (OPS_AND_ENGINEERS if who != "manager" else ["/fleet/"]) + ["/nowhere/", "/servers/register/"]
    too_wide, violations = {}, {}
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        for path in paths:
            width = visit(page, live_server, path)
            name = path.strip("/").replace("/", "-") or "overview"
            screenshot(f"{who}-{viewport['width']}-{name}")
            if viewport is DESKTOP and (found := accessibility_violations()):
                violations[path] = found
            if width > viewport["width"]:
                too_wide[f"{path} at {viewport['width']}"] = (width, widest_elements(page, viewport["width"]))
    if page.evaluate("!!window.UploadOpsCharts"):
        stop_polling()
    assert not too_wide, f"pages wider than the screen: {too_wide}"
    assert not violations, f"serious or critical accessibility violations: {violations}"
