"""The rules every installation starts with, and who receives a rule's emails.

Missing data (decided here, tested in tests/alerting/test_alert_states.py): a
metric rule with no minute values in its window keeps the alert's current state, whatever
it is: a gap in reports must neither page anyone nor resolve an incident. A server that
stops reporting is what the "server silent" rule is for. Rules about servers and collectors
(silent, config, collector) have a value for every server or source that exists: one that
is revoked or no longer live drops out, and its alert resolves.

Flapping: an alert fires only after its condition held for the rule's `for_seconds`, and
resolves only after it was false for `resolve_after_seconds`; a pending alert whose
condition stops holding goes back to ok without email.

A rule that is disabled closes its open alerts without email.

Late metrics: the evaluation rolls the minutes up from the raw reports itself before reading
them (evaluation.py); should that fail, "metrics delayed" fires once the minute rollups are
more than two minutes behind, so a lag is never silence.
"""

from django.conf import settings
from django.db import transaction

from alerting.models import THROTTLED_SHARE, Aggregation, AlertAudit, AlertRule, Comparison, RuleKind, Severity
from core import audit, roles

# docs/runbooks.md, where engineers read it (ALERT_RUNBOOK_URL); rules seeded with it keep it.
RUNBOOK = settings.ALERT_RUNBOOK_URL

DEFAULT_RULES = [
    {
        "slug": "fleet-cpu-high",
        "name": "Fleet CPU high",
        "metric": "cpu_percent",
        "subject": "fleet",
        "aggregation": Aggregation.AVG,
        "window_seconds": 60,
        "comparison": Comparison.GT,
        "threshold": 80,
        "for_seconds": 300,
        "severity": Severity.CRITICAL,
        "runbook_url": f"{RUNBOOK}#fleet-cpu-high",
    },
    {
        "slug": "server-cpu-saturated",
        "name": "Upload server CPU saturated",
        "metric": "cpu_percent",
        "subject": "server:*",
        "aggregation": Aggregation.AVG,
        "window_seconds": 60,
        "comparison": Comparison.GT,
        "threshold": 95,
        "for_seconds": 120,
        "severity": Severity.WARNING,
        "runbook_url": f"{RUNBOOK}#server-cpu-saturated",
    },
    {
        "slug": "uploads-timing-out",
        "name": "Uploads timing out",
        "metric": "timed_out",
        "subject": "fleet",
        "aggregation": Aggregation.SUM,
        "window_seconds": 60,
        "comparison": Comparison.GT,
        "threshold": 0,
        "for_seconds": 120,
        "severity": Severity.CRITICAL,
        "runbook_url": f"{RUNBOOK}#uploads-timing-out",
    },
    {
        "slug": "throttled-share-high",
        "name": "Many uploads throttled",
        "metric": THROTTLED_SHARE,
        "subject": "fleet",
        "aggregation": Aggregation.SUM,
        "window_seconds": 300,
        "comparison": Comparison.GT,
        "threshold": 25,
        "for_seconds": 600,
        "severity": Severity.WARNING,
        "runbook_url": f"{RUNBOOK}#throttled-share-high",
    },
    {
        "slug": "queue-deep",
        "name": "SQS queue deep",
        "metric": "queue_visible",
        "subject": "queue:*",
        "aggregation": Aggregation.AVG,
        "window_seconds": 300,
        "comparison": Comparison.GT,
        "threshold": 1000,
        "for_seconds": 600,
        "severity": Severity.WARNING,
        "runbook_url": f"{RUNBOOK}#queue-deep",
    },
    {
        "slug": "server-silent",
        "name": "Upload server silent",
        "kind": RuleKind.SERVER_SILENT,
        "subject": "server:*",
        "comparison": Comparison.GTE,
        "threshold": 3,
        "for_seconds": 0,
        "resolve_after_seconds": 0,
        "severity": Severity.CRITICAL,
        "runbook_url": f"{RUNBOOK}#server-silent",
    },
    {
        "slug": "config-stale",
        "name": "Server behind on config",
        "kind": RuleKind.CONFIG_STALE,
        "subject": "server:*",
        "comparison": Comparison.GT,
        "threshold": 0,
        "for_seconds": 120,
        "resolve_after_seconds": 0,
        "severity": Severity.WARNING,
        "runbook_url": f"{RUNBOOK}#config-stale",
    },
    {
        "slug": "collector-failing",
        "name": "Metric collector failing",
        "kind": RuleKind.COLLECTOR_FAILING,
        "subject": "source:*",
        "comparison": Comparison.GTE,
        "threshold": 1,
        "for_seconds": 120,
        "resolve_after_seconds": 0,
        "severity": Severity.WARNING,
        "runbook_url": f"{RUNBOOK}#collector-failing",
    },
    {
        # Late metrics are their own alert: rules over minutes that are not there go quiet.
        "slug": "metrics-delayed",
        "name": "Metrics delayed",
        "kind": RuleKind.METRICS_DELAYED,
        "subject": "fleet",
        "comparison": Comparison.GT,
        "threshold": 120,
        "for_seconds": 0,
        "resolve_after_seconds": 0,
        "severity": Severity.WARNING,
        "runbook_url": f"{RUNBOOK}#metrics-delayed",
    },
]


def seed_default_rules() -> int:
    """Create the default rules that are missing (by slug); never touch edited ones."""
    created = 0
    for values in DEFAULT_RULES:
        values = dict(values)
        created += AlertRule.objects.get_or_create(slug=values.pop("slug"), defaults=values)[1]
    return created


def engineer_addresses() -> list[str]:
    """The email addresses of every active engineer."""
    return roles.engineer_addresses()


def recipients(rule: AlertRule) -> list[str]:
    addresses = engineer_addresses() if rule.notify_engineers else []
    addresses += rule.extra_addresses()
    return sorted(set(addresses))


def save_rule(rule: AlertRule, actor, reason: str) -> bool:
    """Save an edited (or new) rule and its audit entry in one transaction."""
    with transaction.atomic():
        before = {}
        if rule.pk:
            before = AlertRule.objects.select_for_update().get(pk=rule.pk).edit_values()
        before, after = audit.diff(before, rule.edit_values())
        if not after:
            return False
        rule.save()
        audit.record(actor, AlertAudit.ALERT_RULE_CHANGED, f"alert rule: {rule.name}", before, after, reason, rule)
    return True
