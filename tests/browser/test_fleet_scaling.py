"""Ops scale the local fleet from 2 to 3 in the browser, through the confirmation."""

import pytest

from core.models import AuditEntry
from fleet.models import ScalingAction, ScalingAudit, ScalingGroup
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_ops_scale_a_local_group_with_a_reason_and_see_the_history_row(page, live_server, log_in, screenshot, ops_user):
    ScalingGroup.objects.all().delete()
    ScalingGroup.objects.create(
        name="sim-fleet",
        backend=ScalingGroup.Backend.LOCAL,
        desired_capacity=2,
        min_capacity=1,
        max_capacity=6,
        cooldown_seconds=300,
    )
    log_in(ops_user.username, PASSWORD)

    page.click("nav >> text=Fleet")
    assert page.inner_text("#group-sim-fleet .desired") == "2"
    screenshot("fleet-before-scaling")
    page.click("[aria-label='+1: scale sim-fleet up by one']")

    assert "2 → 3" in page.inner_text(".from-to")
    page.fill("#id_reason", "TheirStory backlog: CPU at 95%")
    screenshot("fleet-scaling-confirmation")
    page.click("text=Confirm: scale to 3")

    page.wait_for_selector(".message.success")
    assert "Scaling sim-fleet from 2 to 3: done." in page.inner_text(".messages")
    assert page.inner_text("#group-sim-fleet .desired") == "3"
    row = page.locator("#group-sim-fleet table.scaling-history tbody tr").first
    assert "olivia-ops" in row.inner_text() and "2 → 3" in row.inner_text()
    assert "TheirStory backlog: CPU at 95%" in row.inner_text() and "Succeeded" in row.inner_text()
    screenshot("fleet-after-scaling")
    page.click("#group-sim-fleet summary")
    screenshot("fleet-policy-settings")

    assert ScalingGroup.objects.get(name="sim-fleet").desired_capacity == 3
    assert ScalingAction.objects.get().status == ScalingAction.Status.SUCCEEDED
    assert AuditEntry.objects.filter(action=ScalingAudit.SCALING_REQUESTED, actor=ops_user).count() == 1
