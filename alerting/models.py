"""Alert rules, the alerts they raise, silences and notification attempts.

An alert is one incident of one rule for one subject ("fleet", "server:upload-3",
"queue:Video" …). At most one alert per rule and subject is open (pending or firing): a
partial unique constraint enforces it, and every transition is a conditional update on the
state it expects, so two evaluation jobs running at once cannot open or notify twice.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

from core.bounds import int32_max
from core.units import format_bytes_short


class AlertAudit(models.TextChoices):
    """The alerting app's verbs in the audit log (core.audit)."""

    ALERT_RULE_CHANGED = "alerts.rule_changed", "Alert rule changed"
    ALERT_SILENCED = "alerts.silenced", "Alert silenced"
    ALERT_ACKNOWLEDGED = "alerts.acknowledged", "Alert acknowledged"
    TEST_ALERT_SENT = "alerts.test_sent", "Test alert email sent"
    # Written by the evaluation (the system actor), so the audit log tells the whole incident.
    ALERT_FIRED = "alerts.fired", "Alert fired"
    ALERT_RESOLVED = "alerts.resolved", "Alert resolved"


class RuleKind(models.TextChoices):
    METRIC = "metric", "Metric over a window"
    SERVER_SILENT = "server_silent", "Upload server silent"
    CONFIG_STALE = "config_stale", "Server behind the newest config version"
    COLLECTOR_FAILING = "collector_failing", "Metric collector failing"
    METRICS_DELAYED = "metrics_delayed", "Metrics delayed (minute rollups behind the reports)"


class Aggregation(models.TextChoices):
    AVG = "avg", "average"
    MAX = "max", "maximum"
    MIN = "min", "minimum"
    SUM = "sum", "sum"


class Comparison(models.TextChoices):
    GT = "gt", ">"
    GTE = "gte", "≥"
    LT = "lt", "<"
    LTE = "lte", "≤"

    def holds(self, value: float, threshold: float) -> bool:
        return {"gt": value > threshold, "gte": value >= threshold, "lt": value < threshold, "lte": value <= threshold}[
            self.value
        ]


class Severity(models.TextChoices):
    CRITICAL = "critical", "Critical"
    WARNING = "warning", "Warning"


# Metrics a rule can watch: those stored as rollups, plus one derived from two of them.
THROTTLED_SHARE = "throttled_share"
RULE_METRICS = [
    ("cpu_percent", "CPU %"),
    ("uploads_in_progress", "uploads in progress"),
    ("bytes_in_flight", "bytes in flight"),
    ("admitted", "admitted uploads per minute"),
    ("throttled", "throttled uploads per minute"),
    ("timed_out", "timed-out uploads per minute"),
    ("failed", "failed uploads per minute"),
    (THROTTLED_SHARE, "throttled share of requests (%)"),
    ("queue_visible", "SQS messages waiting"),
    ("queue_in_flight", "SQS messages in flight"),
]


# The unit each value is read in (by metric for metric rules, by kind for the others).
VALUE_UNITS = {
    "cpu_percent": "%",
    THROTTLED_SHARE: "%",
    "bytes_in_flight": "bytes",
    "uploads_in_progress": "uploads",
    "admitted": "per minute",
    "throttled": "per minute",
    "timed_out": "per minute",
    "failed": "per minute",
    "queue_visible": "messages",
    "queue_in_flight": "messages",
    RuleKind.SERVER_SILENT: "report intervals",
    RuleKind.CONFIG_STALE: "versions behind",
    RuleKind.COLLECTOR_FAILING: "",
    RuleKind.METRICS_DELAYED: "s",
}


class AlertRule(models.Model):
    slug = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=24, choices=RuleKind.choices, default=RuleKind.METRIC)
    metric = models.CharField(max_length=40, choices=RULE_METRICS, blank=True)
    subject = models.CharField(
        max_length=255,
        default="fleet",
        help_text='What to watch: "fleet", one series ("queue:Video") or every series of a kind '
        '("server:*", "queue:*", "client:*"): one alert per subject.',
    )
    aggregation = models.CharField(max_length=8, choices=Aggregation.choices, default=Aggregation.AVG)
    window_seconds = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(60), int32_max()], help_text="Minute values aggregated, seconds."
    )
    comparison = models.CharField(max_length=4, choices=Comparison.choices, default=Comparison.GT)
    threshold = models.FloatField(default=0)
    for_seconds = models.PositiveIntegerField(
        default=120,
        validators=[int32_max()],
        help_text="The condition must hold this long before the alert fires.",
    )
    resolve_after_seconds = models.PositiveIntegerField(
        default=120,
        validators=[int32_max()],
        help_text="The condition must be false this long before the alert resolves.",
    )
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    notify_engineers = models.BooleanField(default=True, help_text="Email every user in the engineers group.")
    extra_recipients = models.TextField(blank=True, help_text="More addresses, one per line or comma-separated.")
    runbook_url = models.URLField(blank=True)
    repeat_interval_seconds = models.PositiveIntegerField(
        default=3600, validators=[int32_max()], help_text="Remind while firing and unacknowledged; 0 = never."
    )
    enabled = models.BooleanField(default=True)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def condition_text(self) -> str:
        comparison = self.threshold_text()
        if self.kind == RuleKind.SERVER_SILENT:
            return f"report intervals since the last report {comparison}"
        if self.kind == RuleKind.CONFIG_STALE:
            return f"config versions behind the newest {comparison}"
        if self.kind == RuleKind.COLLECTOR_FAILING:
            return "last collection failed"
        if self.kind == RuleKind.METRICS_DELAYED:
            return f"seconds the minute rollups are behind {comparison}"
        if self.metric == THROTTLED_SHARE:
            return f"{self.get_metric_display()} over {self.window_seconds // 60} min {comparison}"
        return (
            f"{self.get_aggregation_display()} {self.get_metric_display()} over "
            f"{self.window_seconds // 60} min {comparison}"
        )

    def get_absolute_url(self) -> str:
        return reverse("alerting:alerts")

    @property
    def cause(self) -> str:
        """What the rule is about: rules with one cause (the fleet's CPU, one server's CPU) are
        mailed together, and their warnings held back while a critical of that cause fires."""
        return self.metric if self.kind == RuleKind.METRIC else self.kind

    def show(self, value: float | None) -> str:
        """A value or threshold as people read it: "96.4 %", "1.2 GB", "4 report intervals"."""
        if value is None:
            return "—"
        unit = VALUE_UNITS.get(self.kind if self.kind != RuleKind.METRIC else self.metric, "")
        if unit == "bytes":
            return format_bytes_short(round(value))
        number = f"{value:.1f}".removesuffix(".0")
        return f"{number} {unit}".strip()

    def threshold_text(self) -> str:
        return f"{self.get_comparison_display()} {self.show(self.threshold)}"

    def extra_addresses(self) -> list[str]:
        return [a.strip() for a in self.extra_recipients.replace(",", "\n").splitlines() if a.strip()]

    def edit_values(self) -> dict:
        return {f.name: getattr(self, f.name) for f in self._meta.fields if f.name not in ("id", "changed_at")}


class AlertState(models.TextChoices):
    OK = "ok", "OK (never fired)"
    PENDING = "pending", "Pending"
    FIRING = "firing", "Firing"
    RESOLVED = "resolved", "Resolved"


OPEN_STATES = (AlertState.PENDING, AlertState.FIRING)


class Alert(models.Model):
    """One incident: pending while the condition holds for less than the rule's "for"."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    subject = models.CharField(max_length=255)
    state = models.CharField(max_length=10, choices=AlertState.choices, default=AlertState.PENDING)
    value = models.FloatField(null=True)
    threshold = models.FloatField(null=True)
    pending_since = models.DateTimeField()
    # Indexed for the timeline, which reads firings by time.
    fired_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Since when the condition has been false while firing (resolving needs it false a while).
    clear_since = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    evaluated_at = models.DateTimeField()
    # The last firing or reminder email queued; None until the first.
    notified_at = models.DateTimeField(null=True, blank=True)
    resolved_notified = models.BooleanField(default=False)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-pending_since", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "subject"],
                condition=models.Q(state__in=["pending", "firing"]),
                name="alert_one_open_per_rule_subject",
            )
        ]

    def __str__(self) -> str:
        return f"{self.rule.name} [{self.subject}] {self.state}"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    def get_absolute_url(self) -> str:
        return f"{reverse('alerting:alerts')}?alert={self.id}#alert-{self.id}"

    def value_text(self) -> str:
        return self.rule.show(self.value) if self.value is not None else "no data"

    def threshold_text(self) -> str:
        return f"{self.rule.get_comparison_display()} {self.rule.show(self.threshold)}"

    def urgency(self) -> tuple:
        """Sort key: critical before warning, firing before pending, the oldest first."""
        return (
            self.rule.severity != Severity.CRITICAL,
            self.state != AlertState.FIRING,
            self.fired_at or self.pending_since,
        )

    def _move(self, expected_state: str, **changes) -> bool:
        """A conditional update from the state we read: False if someone moved it first."""
        changed = Alert.objects.filter(id=self.id, state=expected_state).update(**changes)
        if changed:
            for name, value in changes.items():
                setattr(self, name, value)
        return bool(changed)

    # One method per transition.
    def fire(self, now: datetime, value: float | None) -> bool:
        return self._move(
            AlertState.PENDING, state=AlertState.FIRING, fired_at=now, value=value, evaluated_at=now, clear_since=None
        )

    def cancel(self, now: datetime, value: float | None) -> bool:
        """Pending whose condition stopped holding before its "for": back to ok, no email."""
        return self._move(AlertState.PENDING, state=AlertState.OK, closed_at=now, value=value, evaluated_at=now)

    def resolve(self, now: datetime, value: float | None) -> bool:
        return self._move(AlertState.FIRING, state=AlertState.RESOLVED, closed_at=now, value=value, evaluated_at=now)

    def acknowledge(self, user, now: datetime) -> bool:
        # Only a firing alert: a pending one has sent nothing to acknowledge yet.
        changed = Alert.objects.filter(id=self.id, state=AlertState.FIRING, acknowledged_at=None).update(
            acknowledged_at=now, acknowledged_by=user
        )
        if changed:
            self.acknowledged_at, self.acknowledged_by = now, user
        return bool(changed)

    def claim_notification(self, now: datetime) -> bool:
        """Claim the right to queue a firing or reminder email: one job wins."""
        changed = Alert.objects.filter(id=self.id, state=AlertState.FIRING, notified_at=self.notified_at).update(
            notified_at=now
        )
        if changed:
            self.notified_at = now
        return bool(changed)

    def claim_resolved_notification(self) -> bool:
        changed = Alert.objects.filter(id=self.id, state=AlertState.RESOLVED, resolved_notified=False).update(
            resolved_notified=True
        )
        self.resolved_notified = self.resolved_notified or bool(changed)
        return bool(changed)

    def duration(self, now: datetime | None = None) -> timedelta | None:
        if self.fired_at is None:
            return None
        return (self.closed_at or now or timezone.now()) - self.fired_at


class Silence(models.Model):
    """While active, a rule's alerts (or one subject's) change state but send no email."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="silences")
    subject = models.CharField(max_length=255, blank=True, help_text="Empty: every subject of the rule.")
    comment = models.TextField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    expired_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.rule.name} [{self.subject or 'all'}] until {self.expires_at:%Y-%m-%d %H:%M}"

    @classmethod
    def active(cls, now: datetime) -> models.QuerySet:
        return cls.objects.filter(expires_at__gt=now)

    def is_active(self, now: datetime | None = None) -> bool:
        return self.expires_at > (now or timezone.now())

    def matches(self, alert: Alert) -> bool:
        return self.rule_id == alert.rule_id and self.subject in ("", alert.subject)


class NotificationKind(models.TextChoices):
    FIRING = "firing", "Firing"
    REMINDER = "reminder", "Reminder"
    RESOLVED = "resolved", "Resolved"


class Notification(models.Model):
    """One delivery attempt of one email. A failed attempt that may succeed later queues the
    next attempt as a new row, due after a backoff; each row keeps its own error."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    # Alerts of the same cause that became due in the same evaluation, told in this email
    # (Alertmanager's grouping): two servers at 100 % CPU are one email, not two.
    related = models.ManyToManyField(Alert, blank=True, related_name="grouped_notifications")
    kind = models.CharField(max_length=10, choices=NotificationKind.choices)
    recipients = models.JSONField(default=list)
    attempt = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField(db_index=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    permanent_failure = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.attempt} for alert {self.alert_id}"

    @property
    def status(self) -> str:
        if self.sent_at:
            return "sent"
        if self.error:
            return "failed"
        return "sending" if self.claimed_at else "queued"
