"""Markup typed into partner names, pause reasons and audit comments is shown as text, never run."""

from datetime import timedelta

import pytest

from alerting import actions
from alerting.models import AlertRule
from core.models import AuditEntry
from partners.models import Partner
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NAME = "Evil <img src=x onerror=window.__xss=1> Co"
REASON = "<script>window.__xss=2</script> backlog"
GLOBAL_REASON = "<img src=y onerror=window.__xss=3> all"
COMMENT = "<svg onload=window.__xss=4> quiet please"


def assert_shown_literally_and_not_run(page, *texts: str) -> None:
    body = page.inner_text("body")
    for text in texts:
        assert text in body, f"{text!r} is not shown as text on {page.url}"
    assert page.evaluate("typeof window.__xss") == "undefined", f"markup ran on {page.url}"
    assert page.locator("main img[src=x], main img[src=y], main svg[onload]").count() == 0


def test_markup_in_names_reasons_and_comments_is_text(page, live_server, log_in, screenshot, ops_user, partner_a):
    log_in(ops_user.username, PASSWORD)
    page.on("dialog", lambda dialog: pytest.fail(f"a script opened a dialog: {dialog.message}"))

    # Saved through the forms, as a person would.
    page.goto(f"{live_server.url}/partners/{partner_a.slug}/")
    page.fill("#id_settings-name", NAME)
    page.fill("#id_settings-reason", "renamed <b>for</b> the test")
    page.click("text=Save settings")
    page.wait_for_selector(".message.success")
    page.fill("#id_pause-reason", REASON)
    page.click("text=Pause imports")
    page.wait_for_selector(".message.warning")
    assert Partner.objects.get(pk=partner_a.pk).name == NAME

    page.goto(f"{live_server.url}/controls/")
    page.fill("#id_pause-reason", GLOBAL_REASON)
    page.check("#id_pause-confirm")
    page.click("text=Pause all partner imports")
    page.wait_for_selector(".message.warning")
    actions.create_silence(ops_user, AlertRule.objects.order_by("id").first(), "", COMMENT, timedelta(hours=1))
    assert AuditEntry.objects.filter(reason=REASON).exists()

    page.goto(f"{live_server.url}/partners/{partner_a.slug}/")
    assert_shown_literally_and_not_run(page, NAME, REASON, "renamed <b>for</b> the test")
    screenshot("markup-as-text-partner-detail")
    page.goto(f"{live_server.url}/partners/")
    assert_shown_literally_and_not_run(page, NAME, GLOBAL_REASON)
    page.goto(f"{live_server.url}/audit/")
    assert_shown_literally_and_not_run(page, NAME, REASON, GLOBAL_REASON, COMMENT)
    screenshot("markup-as-text-audit-log")
    page.goto(f"{live_server.url}/controls/")
    assert_shown_literally_and_not_run(page, GLOBAL_REASON)
    page.goto(f"{live_server.url}/alerts/")
    assert_shown_literally_and_not_run(page, COMMENT)
    # The overview lists paused partners from polled JSON, drawn by overview.js.
    page.goto(f"{live_server.url}/")
    page.wait_for_function("text => document.body.innerText.includes(text)", arg=f"{NAME}: {REASON}")
    screenshot("markup-as-text-overview")
    assert_shown_literally_and_not_run(page, f"{NAME}: {REASON}")
