"""Alert emails list temporary limits started or ended during the incident among the actions."""

import pytest
from django.core import mail

from core.models import AuditEntry
from partners.models import PartnerAudit
from tests.factories import at, drive

CPU = ("cpu_percent", "fleet")
pytestmark = pytest.mark.django_db


def test_temporary_limits_during_an_incident_are_among_the_actions_taken(engineer, ops_user, partner_a):
    minute = drive(0, [95] * 6, CPU)
    AuditEntry.objects.create(
        created_at=at(7),
        actor=ops_user,
        actor_name=ops_user.username,
        action=PartnerAudit.OVERRIDE_STARTED,
        target=partner_a,
        subject=partner_a.name,
        before={"max_concurrent_uploads": 16},
        after={"max_concurrent_uploads": 8},
        reason="override #1 by olivia-ops until 2026-11-28 14:00 UTC: shed load",
    )
    minute = drive(minute, [95, 95], CPU)
    drive(minute, [40] * 3, CPU)
    resolved = mail.outbox[-1]
    assert "RESOLVED" in resolved.subject
    assert "Temporary limits started (TheirStory): override #1 by olivia-ops" in resolved.body
