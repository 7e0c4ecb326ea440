"""Ops create the fleet enrolment secret on the servers page, see it once, and see a server that
deregistered or that a scale-in terminated as gone, with when and why."""

import pytest

from monitoring import enrolment, servers
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_ops_create_the_secret_and_see_gone_servers(page, live_server, log_in, screenshot, ops_user):
    request = enrolment.EnrolmentRequest(host_id="i-0abc", name="upload-a", instance_id="i-0abc")
    enrolled = enrolment.enrol_host(request)
    enrolment.deregister(enrolled.server, "deploy")
    servers.register_server(ops_user, "fixed-1", "a fixed box")
    log_in(ops_user.username, PASSWORD)

    page.goto(f"{live_server.url}/servers/")
    assert "No enrolment secret yet" in page.locator("#enrolment").inner_text()
    page.fill("#id_secret-reason", "autoscaling group")
    page.click("text=Create and show the secret")
    secret = page.locator("#secret").inner_text().strip()
    assert enrolment.secret_is_valid(secret)
    screenshot("enrolment-secret-shown-once")

    page.click("text=Back to upload servers")
    card = page.locator("#enrolment").inner_text()
    assert secret[:8] in card and secret not in page.content()
    row = page.locator("tr", has_text="upload-a").inner_text()
    assert "gone" in row and "orderly shutdown: deploy" in row and "i-0abc" in row
    assert "registered by hand" in page.locator("tr", has_text="fixed-1").inner_text()
    screenshot("servers-page-gone-server")
