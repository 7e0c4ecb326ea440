"""The alerts page: who sees it, who edits rules and silences, who acknowledges."""

import pytest
from django.urls import reverse

from alerting.models import Alert, AlertAudit, AlertRule, AlertState, Silence
from core.models import AuditEntry
from tests.factories import drive

CPU = ("cpu_percent", "fleet")
pytestmark = pytest.mark.django_db


@pytest.fixture
def firing_alert(engineer):
    drive(0, [90] * 6, CPU)
    return Alert.objects.get(rule__slug="fleet-cpu-high", state=AlertState.FIRING)


def rule_post(rule: AlertRule, **changes) -> dict:
    data = {k: ("on" if v is True else "" if v is False else v) for k, v in rule.edit_values().items()}
    data = {k: v for k, v in data.items() if v != ""}
    data.update(reason="tuning", **changes)
    return data


@pytest.mark.parametrize("who, status", [("ops_user", 200), ("engineer", 200), ("manager_a", 403)])
def test_ops_and_engineers_see_the_alerts_page_and_managers_get_403(request, login, who, status, firing_alert):
    response = login(request.getfixturevalue(who)).get(reverse("alerting:alerts"))
    assert response.status_code == status
    if status == 200:
        assert b"Fleet CPU high" in response.content and b"Firing" in response.content


def test_anonymous_visitors_are_sent_to_log_in(client):
    for url in (reverse("alerting:alerts"), reverse("alerting:rule-new")):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_ops_edit_a_rule_and_the_change_is_audited(login, ops_user):
    rule = AlertRule.objects.get(slug="fleet-cpu-high")
    response = login(ops_user).post(reverse("alerting:rule-edit", args=[rule.id]), rule_post(rule, threshold="85"))
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.threshold == 85
    entry = AuditEntry.objects.get(action=AlertAudit.ALERT_RULE_CHANGED)
    assert entry.before == {"threshold": 80.0} and entry.after == {"threshold": 85.0}
    assert entry.reason == "tuning"


def test_a_rule_change_without_a_reason_is_refused(login, ops_user):
    rule = AlertRule.objects.get(slug="fleet-cpu-high")
    data = rule_post(rule, threshold="85")
    del data["reason"]
    response = login(ops_user).post(reverse("alerting:rule-edit", args=[rule.id]), data)
    assert response.status_code == 400
    assert not AuditEntry.objects.filter(action=AlertAudit.ALERT_RULE_CHANGED).exists()


def test_ops_create_a_rule(login, ops_user):
    rule = AlertRule(
        slug="video-queue",
        name="Video queue deep",
        metric="queue_visible",
        subject="queue:Video",
        threshold=50,
        extra_recipients="oncall@example.org",
    )
    response = login(ops_user).post(reverse("alerting:rule-new"), rule_post(rule))
    assert response.status_code == 302
    assert AlertRule.objects.get(slug="video-queue").extra_addresses() == ["oncall@example.org"]


@pytest.mark.parametrize("who", ["engineer", "manager_a"])
def test_only_ops_edit_rules(request, login, who):
    rule = AlertRule.objects.get(slug="fleet-cpu-high")
    client = login(request.getfixturevalue(who))
    assert client.get(reverse("alerting:rule-edit", args=[rule.id])).status_code == 403
    assert client.post(reverse("alerting:rule-edit", args=[rule.id]), rule_post(rule, threshold="1")).status_code == 403
    rule.refresh_from_db()
    assert rule.threshold == 80


def test_ops_silence_a_rule_and_expire_the_silence(login, ops_user):
    rule = AlertRule.objects.get(slug="queue-deep")
    client = login(ops_user)
    response = client.post(
        reverse("alerting:silence-create"),
        {"rule": rule.id, "subject": "queue:Video", "comment": "backfill", "duration_minutes": 30},
    )
    assert response.status_code == 302
    silence = Silence.objects.get()
    assert silence.created_by == ops_user and silence.subject == "queue:Video"
    client.post(reverse("alerting:silence-expire", args=[silence.id]), {"reason": "done"})
    silence.refresh_from_db()
    assert not silence.is_active() and silence.expired_by == ops_user
    assert AuditEntry.objects.filter(action=AlertAudit.ALERT_SILENCED).count() == 2


def test_a_silence_without_a_comment_is_refused(login, ops_user):
    rule = AlertRule.objects.get(slug="queue-deep")
    response = login(ops_user).post(reverse("alerting:silence-create"), {"rule": rule.id, "duration_minutes": 30})
    assert response.status_code == 400 and not Silence.objects.exists()


@pytest.mark.parametrize("who", ["engineer", "manager_a"])
def test_only_ops_create_or_expire_silences(request, login, ops_user, who):
    rule = AlertRule.objects.get(slug="queue-deep")
    client = login(request.getfixturevalue(who))
    assert (
        client.post(
            reverse("alerting:silence-create"), {"rule": rule.id, "comment": "x", "duration_minutes": 30}
        ).status_code
        == 403
    )
    from datetime import timedelta

    from alerting import actions

    silence = actions.create_silence(ops_user, rule, "", "by ops", timedelta(hours=1))
    assert client.post(reverse("alerting:silence-expire", args=[silence.id])).status_code == 403


def test_engineers_acknowledge_an_alert_and_it_is_audited(login, engineer, firing_alert):
    response = login(engineer).post(reverse("alerting:acknowledge", args=[firing_alert.id]))
    assert response.status_code == 302
    firing_alert.refresh_from_db()
    assert firing_alert.acknowledged_by == engineer
    assert AuditEntry.objects.get(action=AlertAudit.ALERT_ACKNOWLEDGED).actor == engineer


def test_managers_cannot_acknowledge(login, manager_a, firing_alert):
    url = reverse("alerting:acknowledge", args=[firing_alert.id])
    assert login(manager_a).post(url).status_code == 403


def test_the_nav_shows_alerts_to_ops_and_engineers_only(login, engineer, manager_a):
    assert b">Alerts</a>" in login(engineer).get(reverse("alerting:alerts")).content
    assert b">Alerts</a>" not in login(manager_a).get(reverse("audit")).content


def test_the_alerts_page_costs_a_fixed_number_of_queries(login, ops_user, firing_alert, django_assert_max_num_queries):
    client = login(ops_user)
    with django_assert_max_num_queries(12):
        assert client.get(reverse("alerting:alerts")).status_code == 200


@pytest.mark.parametrize("field", ["window_seconds", "for_seconds", "resolve_after_seconds", "repeat_interval_seconds"])
def test_a_rule_duration_beyond_its_column_is_a_field_error(login, ops_user, field):
    # window_seconds=2**40 once stopped every rule's evaluation (a date out of range on SQLite).
    rule = AlertRule.objects.get(slug="fleet-cpu-high")
    response = login(ops_user).post(
        reverse("alerting:rule-edit", args=[rule.id]), rule_post(rule, **{field: str(2**40)})
    )
    assert response.status_code == 400
    assert "At most 2147483647" in " ".join(response.context["form"].errors[field])
    rule.refresh_from_db()
    assert getattr(rule, field) != 2**40
