"""Scaling groups, the actions that scale them, and the automatic policy's decisions.

A ScalingAction is a small state machine (requested → running → succeeded / failed /
refused): the request and its audit entry commit together; the task claims the action with a
conditional update, so a retried task never scales twice.
"""

from datetime import timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from core.bounds import int32_max
from monitoring import metrics


class ScalingAudit(models.TextChoices):
    """The fleet app's verbs in the audit log (core.audit)."""

    SCALING_GROUP_CHANGED = "scaling.group_changed", "Scaling group settings changed"
    SCALING_REQUESTED = "scaling.requested", "Scaling requested"
    SCALING_POLICY_CHANGED = "scaling.policy_changed", "Scaling policy changed"


class ScalingGroup(models.Model):
    class Backend(models.TextChoices):
        AWS = "aws", "AWS Auto Scaling group"
        LOCAL = "local", "Local simulated fleet"

    name = models.SlugField(max_length=100, unique=True, help_text="How the dashboard names the group.")
    backend = models.CharField(max_length=8, choices=Backend.choices, default=Backend.LOCAL)
    aws_group_name = models.CharField(
        "AWS group name", max_length=255, blank=True, help_text="The Auto Scaling group's name (AWS backend only)."
    )
    server_name_prefix = models.CharField(
        max_length=100,
        blank=True,
        help_text="Local backend: upload servers whose names start with this belong to the group "
        "(empty: every upload server).",
    )
    min_capacity = models.PositiveIntegerField(default=1, validators=[int32_max()])
    max_capacity = models.PositiveIntegerField(default=10, validators=[int32_max()])
    cooldown_seconds = models.PositiveIntegerField(
        default=300, validators=[int32_max()], help_text="After a scaling, the next one waits this long."
    )
    # Local backend: the capacity the simulated fleet runs. AWS: unused (AWS holds it).
    desired_capacity = models.PositiveIntegerField(default=2, validators=[int32_max()])
    # Reserved by the action that scales; the cooldown counts from here (see scaling.run_action).
    last_scaled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(min_capacity__lte=F("max_capacity")),
                name="scaling_group_min_le_max",
                violation_error_message="The minimum must not be above the maximum.",
            ),
            models.CheckConstraint(
                condition=~Q(backend="aws") | ~Q(aws_group_name=""),
                name="scaling_group_aws_needs_name",
                violation_error_message="An AWS group needs the AWS group name.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_aws(self) -> bool:
        return self.backend == self.Backend.AWS

    def cpu_subject(self) -> str:
        """The Rollup subject holding this group's average CPU per minute."""
        return metrics.autoscaling_group_subject(self.aws_group_name) if self.is_aws else metrics.FLEET

    def cooldown_ends_at(self):
        if self.last_scaled_at is None:
            return None
        return self.last_scaled_at + timedelta(seconds=self.cooldown_seconds)

    def in_cooldown(self, now=None) -> bool:
        ends = self.cooldown_ends_at()
        return ends is not None and ends > (now or timezone.now())

    def bounds_problem(self, capacity: int) -> str:
        """Why `capacity` is outside this group's bounds, or "" when it is within them."""
        if capacity > self.max_capacity:
            return f"{capacity} is above the group's maximum of {self.max_capacity}."
        if capacity < self.min_capacity:
            return f"{capacity} is below the group's minimum of {self.min_capacity}."
        return ""


class ScalingAction(models.Model):
    class Status(models.TextChoices):
        REQUESTED = "requested", "Requested"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        REFUSED = "refused", "Refused"

    POLICY_NAME = "policy"

    group = models.ForeignKey(ScalingGroup, on_delete=models.PROTECT, related_name="actions")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_by_name = models.CharField(max_length=150, help_text="“policy” for automatic actions.")
    from_capacity = models.PositiveIntegerField()
    to_capacity = models.PositiveIntegerField()
    reason = models.TextField()
    idempotency_key = models.UUIDField(unique=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.REQUESTED)
    message = models.TextField(blank=True, help_text="Why it failed or was refused, in words.")
    requested_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Claims so far: a worker that died midway leaves the action running; the sweeper
    # (scaling.recover_abandoned) hands it back for another claim, a bounded number of times.
    attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["-requested_at", "-id"]

    def __str__(self) -> str:
        return f"{self.group}: {self.from_capacity} → {self.to_capacity} ({self.status})"

    # Transitions: each is a conditional update that changes exactly one row or nothing.

    def start(self) -> bool:
        """Claim the action (requested → running); False when another run already claimed it."""
        return self._move(
            self.Status.REQUESTED, self.Status.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1
        )

    def release(self, message: str) -> bool:
        """Hand an abandoned claim back (running → requested) for the next claim to carry out."""
        return self._move(self.Status.RUNNING, self.Status.REQUESTED, message=message, started_at=None)

    def succeed(self, message: str = "") -> bool:
        return self._move(self.Status.RUNNING, self.Status.SUCCEEDED, message=message, finished_at=timezone.now())

    def fail(self, message: str) -> bool:
        return self._move(self.Status.RUNNING, self.Status.FAILED, message=message, finished_at=timezone.now())

    def refuse(self, message: str) -> bool:
        return self._move(self.Status.RUNNING, self.Status.REFUSED, message=message, finished_at=timezone.now())

    def _move(self, source: str, target: str, **fields) -> bool:
        moved = ScalingAction.objects.filter(pk=self.pk, status=source).update(status=target, **fields)
        if moved:
            self.status = target
            for name, value in fields.items():
                if not hasattr(value, "resolve_expression"):
                    setattr(self, name, value)
            if "attempts" in fields:
                self.attempts = ScalingAction.objects.values_list("attempts", flat=True).get(pk=self.pk)
        return bool(moved)


def _percent_field(default: float, verbose_name: str, help_text: str = ""):
    return models.FloatField(
        verbose_name, default=default, help_text=help_text, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )


# What ops edit on the fleet page.
POLICY_FIELDS = [
    "enabled",
    "target_cpu_percent",
    "tolerance_percent",
    "evaluation_minutes",
    "stabilization_minutes",
    "max_step",
    "never_scale_in",
    "max_data_age_minutes",
]
# What ops edit for an AWS group: AWS's own target tracking takes these (fleet.aws_policy).
AWS_POLICY_FIELDS = ["enabled", "target_cpu_percent", "warmup_seconds", "never_scale_in"]


class ScalingPolicy(models.Model):
    """Target tracking on the group's CPU. Off until ops turn it on.

    For an AWS group this is what the dashboard asks of AWS's own target-tracking policy
    (fleet.aws_policy); for the local simulated fleet, fleet.policy evaluates it every minute.
    """

    group = models.OneToOneField(ScalingGroup, on_delete=models.CASCADE, related_name="policy")
    enabled = models.BooleanField(default=False)
    target_cpu_percent = _percent_field(60, "target CPU %")
    tolerance_percent = models.FloatField(
        "tolerance %",
        default=10,
        validators=[MinValueValidator(0), MaxValueValidator(50)],
        help_text="No action while CPU is within this many percent (relative) of the target.",
    )
    evaluation_minutes = models.PositiveIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(30)],
        help_text="Scale out on the CPU averaged over this many minutes.",
    )
    stabilization_minutes = models.PositiveIntegerField(
        default=10,
        validators=[MinValueValidator(1), MaxValueValidator(120)],
        help_text="Scale in only after CPU has stayed low for this many minutes.",
    )
    max_step = models.PositiveIntegerField(
        default=3, validators=[MinValueValidator(1), int32_max()], help_text="At most this many servers per action."
    )
    never_scale_in = models.BooleanField(default=False)
    warmup_seconds = models.PositiveIntegerField(
        "warm-up (seconds)",
        default=300,
        validators=[MaxValueValidator(3600)],
        help_text="AWS groups: a new instance's CPU counts only after this long (EstimatedInstanceWarmup).",
    )
    max_data_age_minutes = models.PositiveIntegerField(
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(60)],
        help_text="No CPU sample this recent: no action.",
    )

    class Meta:
        verbose_name_plural = "scaling policies"

    def __str__(self) -> str:
        return f"policy of {self.group}"


class PolicyDecision(models.Model):
    """One evaluation of a group's policy, with its reason in words (like AWS's activity cause)."""

    class Outcome(models.TextChoices):
        SCALE_OUT = "scale_out", "Scale out"
        SCALE_IN = "scale_in", "Scale in"
        HOLD = "hold", "No change"
        NO_DATA = "no_data", "No data, no action"
        ERROR = "error", "Error, no action"

    group = models.ForeignKey(ScalingGroup, on_delete=models.CASCADE, related_name="decisions")
    evaluated_minute = models.DateTimeField()
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    cpu_percent = models.FloatField(null=True, blank=True)
    from_capacity = models.PositiveIntegerField(null=True, blank=True)
    to_capacity = models.PositiveIntegerField(null=True, blank=True)
    reason = models.TextField()
    action = models.OneToOneField(
        ScalingAction, null=True, blank=True, on_delete=models.SET_NULL, related_name="decision"
    )

    class Meta:
        ordering = ["-evaluated_minute", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["group", "evaluated_minute"], name="policy_decision_once_per_minute")
        ]

    def __str__(self) -> str:
        return self.reason
