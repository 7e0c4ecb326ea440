"""The whole incident in one place: firings and recoveries in the audit log, acknowledgements
and silences on the timeline, and values people read (no "False → True", no microseconds)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alerting import actions
from alerting.models import Alert, AlertAudit
from core.models import AuditEntry
from dashboard import timeline
from partners.templatetags.limits import audit_value
from tests.factories import T0, make_server, tick

pytestmark = pytest.mark.django_db


def test_a_firing_and_its_recovery_are_in_the_audit_log_with_units(client, ops_user):
    make_server("upload-1", seen_at=T0 - timedelta(minutes=5))
    tick(T0)
    alert = Alert.objects.get(rule__slug="server-silent")
    fired = AuditEntry.objects.get(action=AlertAudit.ALERT_FIRED)
    assert fired.actor_name == "system" and fired.subject == "alert: Upload server silent [server:upload-1]"
    assert fired.after["threshold"] == "≥ 3 report intervals"
    # The server reports again: the alert resolves, and the log says so.
    alert_server = alert.subject.removeprefix("server:")
    from monitoring.models import UploadServer

    seen = UploadServer.objects.get(name=alert_server)
    seen.last_seen_at = T0 + timedelta(minutes=1)
    seen.save()
    tick(T0 + timedelta(minutes=1))
    assert AuditEntry.objects.filter(action=AlertAudit.ALERT_RESOLVED).count() == 1
    client.force_login(ops_user)
    page = client.get("/audit/").content.decode()
    assert "Alert fired" in page and "Alert resolved" in page


def test_an_acknowledgement_is_on_the_timeline_for_ops_and_not_for_managers(engineer, manager_a, partner_a):
    make_server("upload-1", seen_at=T0 - timedelta(minutes=5))
    tick(T0)
    alert = Alert.objects.get(rule__slug="server-silent")
    now = timezone.now()
    actions.acknowledge(engineer, alert, now)
    window = (now - timedelta(minutes=1), now + timedelta(minutes=1))
    titles = [event.title for event in timeline.events(*window)]
    assert any(title.startswith("Alert acknowledged") for title in titles)
    assert not any(
        t.startswith("Alert acknowledged") for t in (e.title for e in timeline.events(*window, user=manager_a))
    )


def test_audit_values_read_as_words_and_minutes():
    assert audit_value(True, "paused") == "yes" and audit_value(False, "paused") == "no"
    assert audit_value("2026-11-28T10:05:33.123456+00:00", "expires_at") == "2026-11-28 10:05 UTC"
    assert audit_value("not a date", "reason") == "not a date"
