"""One evaluation cycle: every enabled rule's current value per subject, the state
transitions they cause, and the emails those transitions queue. Run every minute by
django-q2 (alerting.tasks.evaluate_alerts); safe to run twice or concurrently: alerts are
opened under a unique constraint and moved by conditional updates on the state read.

Windows: a metric rule aggregates the last `window` of complete minutes, the newest being
the last minute that has ended (rollups.last_complete_minute). The minutes are rolled up from
the raw reports first, in this job: when the separate rollup job lags (the worker is busy
exactly during an incident), the rules still see every minute the servers reported. If even
that fails, the "metrics delayed" rule says so; a rule never goes quiet for want of rollups.

One rule that fails (bad data, a bug) is logged and counted; the others are still evaluated.
"""

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from alerting import notify
from alerting.models import (
    OPEN_STATES,
    THROTTLED_SHARE,
    Alert,
    AlertAudit,
    AlertRule,
    AlertState,
    Comparison,
    Notification,
    NotificationKind,
    RuleKind,
    Severity,
    Silence,
)
from alerting.rules import recipients
from core import audit
from fleet import membership
from monitoring import metrics, queries, rollups
from monitoring.models import MetricSource, UploadServer
from partners.models import UploadLimitRow

logger = logging.getLogger(__name__)


def run(now: datetime | None = None) -> dict:
    """The scheduled job: evaluate, then deliver every notification due (retries included)."""
    now = now or timezone.now()
    summary = evaluate(now)
    summary["delivered"] = notify.deliver_due(now)
    return summary


def evaluate(now: datetime | None = None) -> dict:
    now = now or timezone.now()
    counts: dict[str, int] = defaultdict(int)
    _bring_minutes_up_to_date(now, counts)
    rules = list(AlertRule.objects.filter(enabled=True))
    open_alerts = {(a.rule_id, a.subject): a for a in Alert.objects.filter(state__in=OPEN_STATES)}
    for rule in rules:
        try:
            _evaluate_rule(rule, open_alerts, now, counts)
        except Exception:
            # One rule's failure (a value stored before it was bounded, a bug) leaves its alerts
            # as they were (its own savepoint) and never stops the other rules.
            logger.exception("Alert rule %s could not be evaluated; the other rules were", rule.slug)
            counts["rule_failed"] += 1
    counts["closed_disabled"] = _close_disabled(now)
    counts["queued"] = queue_notifications(now)
    return dict(counts)


def _bring_minutes_up_to_date(now: datetime, counts: dict[str, int]) -> None:
    try:
        counts["minutes_rolled"] = rollups.roll_up_minutes(now)
    except Exception:
        # The rules then read what is there, and "metrics delayed" fires as the lag grows.
        logger.exception("minute rollups could not be brought up to date before evaluating alerts")
        counts["rollup_failed"] = 1


def _evaluate_rule(rule: AlertRule, open_alerts: dict, now: datetime, counts: dict[str, int]) -> None:
    # One commit per rule, not one per alert: a rule over 50 servers moves 50 alerts.
    with transaction.atomic():
        values = rule_values(rule, now)
        subjects = set(values) | {subject for (rule_id, subject) in open_alerts if rule_id == rule.id}
        for subject in sorted(subjects):
            value = values.get(subject)
            if value is None and rule.kind == RuleKind.METRIC:
                continue  # no data: the alert keeps its state (see rules.py)
            # A server or source that is gone (revoked, no longer live) no longer matches.
            holds = value is not None and Comparison(rule.comparison).holds(value, rule.threshold)
            counts[_step(rule, open_alerts.get((rule.id, subject)), subject, holds, value, now)] += 1


def _close_disabled(now: datetime) -> int:
    """A disabled rule's open alerts close without email: nobody is watching that condition."""
    closed = 0
    for alert in Alert.objects.filter(state__in=OPEN_STATES, rule__enabled=False):
        if alert.state == AlertState.PENDING:
            closed += alert.cancel(now, alert.value)
        elif alert.resolve(now, alert.value):
            closed += Alert.objects.filter(id=alert.id).update(resolved_notified=True)
    return closed


def _step(rule: AlertRule, alert: Alert | None, subject: str, holds: bool, value, now: datetime) -> str:
    if not holds:
        if alert is None:
            return "ok"
        if alert.state == AlertState.PENDING:
            alert.cancel(now, value)
            return "cancelled"
        clear_since = alert.clear_since or now
        if now - clear_since >= timedelta(seconds=rule.resolve_after_seconds):
            if not alert.resolve(now, value):
                return "raced"
            _record(alert, AlertAudit.ALERT_RESOLVED, value)
            return "resolved"
        Alert.objects.filter(id=alert.id, state=AlertState.FIRING).update(
            clear_since=clear_since, value=value, evaluated_at=now
        )
        return "clearing"
    if alert is None:
        alert = _open(rule, subject, value, now)
        if alert is None:
            return "raced"
    if alert.state == AlertState.PENDING:
        if now - alert.pending_since >= timedelta(seconds=rule.for_seconds):
            if not alert.fire(now, value):
                return "raced"
            _record(alert, AlertAudit.ALERT_FIRED, value)
            return "fired"
        Alert.objects.filter(id=alert.id, state=AlertState.PENDING).update(value=value, evaluated_at=now)
        return "pending"
    Alert.objects.filter(id=alert.id, state=AlertState.FIRING).update(value=value, evaluated_at=now, clear_since=None)
    return "firing"


def _record(alert: Alert, action: str, value) -> None:
    """The transition in the audit log, in the rule's transaction (the system is the actor)."""
    audit.record(
        None,
        action,
        f"alert: {alert.rule.name} [{alert.subject}]",
        {},
        {"value": alert.rule.show(value), "threshold": alert.threshold_text()},
        alert.rule.get_severity_display(),
        alert,
    )


def _open(rule: AlertRule, subject: str, value, now: datetime) -> Alert | None:
    try:
        with transaction.atomic():
            return Alert.objects.create(
                rule=rule,
                subject=subject,
                state=AlertState.PENDING,
                value=value,
                threshold=rule.threshold,
                pending_since=now,
                evaluated_at=now,
            )
    except IntegrityError:
        return None  # another evaluation opened it first


def queue_notifications(now: datetime) -> int:
    """Queue the firing, reminder and resolved emails now due, as Alertmanager would: alerts
    of one cause due together go out as one email, and a warning is held back while a
    critical of its cause fires. A claim per alert makes a second concurrent run queue nothing."""
    silences = list(Silence.active(now))
    due: list[tuple[Alert, str]] = []
    firing = [
        alert
        for alert in Alert.objects.filter(state=AlertState.FIRING, rule__enabled=True).select_related("rule")
        if not any(s.matches(alert) for s in silences)
    ]
    critical_causes = held_back_causes(firing)
    for alert in firing:
        kind = _firing_kind_due(alert, now)
        if kind is None or alert.rule.cause in critical_causes and alert.rule.severity != Severity.CRITICAL:
            continue  # a held-back warning is mailed once the critical resolves, if it still fires
        if alert.claim_notification(now):
            due.append((alert, kind))
    for alert in Alert.objects.filter(
        state=AlertState.RESOLVED, resolved_notified=False, notified_at__isnull=False
    ).select_related("rule"):
        # A resolution while silenced is claimed too, so it is not mailed once the silence ends.
        if alert.claim_resolved_notification() and not any(s.matches(alert) for s in silences):
            due.append((alert, NotificationKind.RESOLVED))
    return sum(_queue(group, now) for group in _groups(due))


def held_back_causes(firing: list[Alert]) -> set[str]:
    """Causes whose warnings wait: a critical alert of that cause is firing."""
    return {alert.rule.cause for alert in firing if alert.rule.severity == Severity.CRITICAL}


def _firing_kind_due(alert: Alert, now: datetime) -> str | None:
    if alert.notified_at is None:
        return NotificationKind.FIRING
    repeat = alert.rule.repeat_interval_seconds
    if alert.acknowledged_at is None and repeat and now - alert.notified_at >= timedelta(seconds=repeat):
        return NotificationKind.REMINDER
    return None


def _groups(due: list[tuple[Alert, str]]) -> list[list[tuple[Alert, str]]]:
    """One group per cause and direction (firing or resolved), the most urgent alert first:
    critical before warning, the fleet before one server."""
    groups: dict[tuple[str, bool], list[tuple[Alert, str]]] = defaultdict(list)
    for alert, kind in due:
        groups[(alert.rule.cause, kind == NotificationKind.RESOLVED)].append((alert, kind))
    return [
        sorted(members, key=lambda m: (m[0].rule.severity != Severity.CRITICAL, m[0].subject != "fleet", m[0].id))
        for members in groups.values()
    ]


def _queue(group: list[tuple[Alert, str]], now: datetime) -> int:
    (lead, kind), others = group[0], [alert for alert, _ in group[1:]]
    addresses = sorted({address for alert, _ in group for address in recipients(alert.rule)})
    notification = Notification.objects.create(alert=lead, kind=kind, recipients=addresses, due_at=now, created_at=now)
    notification.related.set(others)
    return 1


# ---- values -------------------------------------------------------------------------------


def rule_values(rule: AlertRule, now: datetime) -> dict[str, float]:
    """subject → current value; a subject without data is absent."""
    if rule.kind == RuleKind.SERVER_SILENT:
        return _silent_servers(now)
    if rule.kind == RuleKind.CONFIG_STALE:
        return _config_lag(now)
    if rule.kind == RuleKind.COLLECTOR_FAILING:
        return {f"source:{s.kind}:{s.name}": float(s.failing) for s in MetricSource.objects.filter(enabled=True)}
    if rule.kind == RuleKind.METRICS_DELAYED:
        return _rollup_delay(now)
    if rule.metric == THROTTLED_SHARE:
        return _throttled_share(rule, now)
    return _window_values(rule, rule.metric, now, rule.aggregation)


def _window_values(rule: AlertRule, metric: str, now: datetime, aggregation: str) -> dict[str, float]:
    """The rule's window: the last `window_seconds` of complete minutes."""
    newest = rollups.last_complete_minute(now)
    return queries.minute_aggregates(
        metric, rule.subject, newest - timedelta(seconds=rule.window_seconds), newest, aggregation
    )


def _rollup_delay(now: datetime) -> dict[str, float]:
    """Seconds between the end of the last complete minute and the end of the newest minute
    rolled from the reports: 0 when up to date; absent before the first report."""
    rolled_until = rollups.minutes_rolled_until(now)
    if rolled_until is None:
        return {}
    due_until = rollups.last_complete_minute(now) + timedelta(seconds=metrics.MINUTE_SECONDS)
    return {metrics.FLEET: max(0.0, (due_until - rolled_until).total_seconds())}


def _throttled_share(rule: AlertRule, now: datetime) -> dict[str, float]:
    """Throttled as a percentage of admitted + throttled over the window, per subject."""
    totals: dict[str, dict[str, float]] = defaultdict(dict)
    for metric in (metrics.THROTTLED, metrics.ADMITTED):
        for subject, value in _window_values(rule, metric, now, "sum").items():
            totals[subject][metric] = value or 0.0
    shares = {}
    for subject, sums in totals.items():
        requests = sums.get(metrics.THROTTLED, 0.0) + sums.get(metrics.ADMITTED, 0.0)
        shares[subject] = 100.0 * sums.get(metrics.THROTTLED, 0.0) / requests if requests else 0.0
    return shares


def _silent_servers(now: datetime) -> dict[str, float]:
    """Report intervals since each server's last report. A server that never reported has no
    value (registering one must not page anyone), nor has one that is gone: first the fleet
    marks gone the servers its scale-ins terminated (fleet.membership)."""
    if membership.has_silent_enrolled_servers(now):
        membership.mark_terminated_servers_gone(now)
    return {
        metrics.server_subject(name): (now - seen).total_seconds() / interval
        for name, seen, interval in UploadServer.objects.filter(
            revoked_at=None, gone_at=None, last_seen_at__isnull=False
        ).values_list("name", "last_seen_at", "report_interval_seconds")
    }


def _config_lag(now: datetime) -> dict[str, float]:
    """Versions each live server is behind the newest published one."""
    newest = UploadLimitRow.published_version()
    if newest is None:
        return {}
    return {
        metrics.server_subject(name): float(newest - (applied or 0))
        for name, applied in UploadServer.live(now).values_list("name", "last_config_version")
    }
