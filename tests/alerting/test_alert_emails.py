"""What alert emails say: state and severity, value against threshold and since when, top
partners with their limits, actions taken, a deep link and the runbook."""

import pytest
from django.core import mail
from django.test import override_settings

from core.models import AuditEntry
from fleet.models import ScalingAudit
from partners.models import PartnerAudit
from tests.factories import at, drive, sample, tick

CPU = ("cpu_percent", "fleet")
pytestmark = pytest.mark.django_db


def load(minute: int, partner_client_id: str, uploads: float) -> None:
    sample("uploads_in_progress", f"client:{partner_client_id}", at(minute), uploads)


@override_settings(DASHBOARD_BASE_URL="https://ops.example.org")
def test_the_firing_email_says_what_is_wrong_who_loads_the_fleet_and_where_to_look(engineer, partner_a, partner_b):
    for minute in range(6):
        load(minute, "theirstory-sdk", 38)
        load(minute, "fas-importer", 4)
        tick(at(minute), {CPU: 92.5})
    message = mail.outbox[0]
    html = message.alternatives[0].content
    for body in (message.body, html):
        assert "92.5 %" in body and "80 %" in body  # values in their unit
        assert "2026-11-28 10:05" in body
        assert body.index("TheirStory") < body.index("Family Archive")
        assert "16" in body  # TheirStory's concurrent-upload limit in force
        assert "https://ops.example.org/alerts/?alert=" in body
        assert "runbooks.md#fleet-cpu-high" in body
    assert "FIRING" in message.subject and "CRITICAL" in message.subject


def test_actions_taken_since_firing_are_listed_and_the_resolved_email_sums_them_up(engineer, ops_user, partner_a):
    minute = drive(0, [95] * 6, CPU)
    # Ops react after the alert fired: audit entries as partners.changes writes them, dated
    # on the test's clock.
    AuditEntry.objects.create(
        created_at=at(7),
        actor=ops_user,
        actor_name=ops_user.username,
        action=PartnerAudit.PARTNER_PAUSED,
        target=partner_a,
        subject=partner_a.name,
        after={"paused": True},
        reason="CPU saturated by the backlog import",
    )
    AuditEntry.objects.create(
        created_at=at(7),
        actor=ops_user,
        actor_name=ops_user.username,
        action=ScalingAudit.SCALING_REQUESTED,
        subject="upload-asg",
        before={"desired": 4},
        after={"desired": 8},
        reason="more servers",
    )
    AuditEntry.objects.create(
        created_at=at(1),
        actor=ops_user,
        actor_name=ops_user.username,
        action=PartnerAudit.LIMITS_CHANGED,
        subject="before the incident",
        reason="x",
    )
    minute = drive(minute, [95, 95], CPU)
    drive(minute, [40] * 3, CPU)
    resolved = mail.outbox[-1]
    assert "RESOLVED" in resolved.subject
    assert "What was done during the incident" in resolved.body
    assert "Imports paused (TheirStory): CPU saturated by the backlog import" in resolved.body
    assert "Scaling requested (upload-asg)" in resolved.body
    assert "before the incident" not in resolved.body


def test_a_reminder_says_it_is_a_reminder(engineer):
    from alerting.models import AlertRule

    AlertRule.objects.filter(slug="fleet-cpu-high").update(repeat_interval_seconds=300)
    drive(0, [90] * 11, CPU)
    assert "reminder" in mail.outbox[1].subject
    assert "still firing, not acknowledged" in mail.outbox[1].body
