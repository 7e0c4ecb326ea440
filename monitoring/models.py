"""Upload servers and their reports, metric sources (CloudWatch, SQS) and stored metrics.

Storage is sized for a year: each status report is one `ServerReport` row, kept raw for a
short window; a scheduled job rolls reports and collected samples into `Rollup` rows per
minute, per ten minutes and per hour, each level with its own retention. A chart picks the
finest level that draws at most about 1,000 points a series (monitoring.charts).
"""

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

server_name_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
    "Use letters, digits and . _ - (up to 100), as the server calls itself in its reports.",
)
TOKEN_PREFIX_CHARS = 8
SILENT_AFTER_INTERVALS = 3


class ServerAudit(models.TextChoices):
    """The monitoring app's verbs in the audit log (core.audit)."""

    SERVER_REGISTERED = "server.registered", "Upload server registered"
    SERVER_TOKEN_ROTATED = "server.token_rotated", "Upload server token replaced"
    SERVER_REVOKED = "server.revoked", "Upload server revoked"
    SERVER_ENROLLED = "server.enrolled", "Upload server enrolled itself"
    SERVER_DEREGISTERED = "server.deregistered", "Upload server deregistered itself"
    SERVER_GONE = "server.gone", "Upload server gone (terminated)"
    ENROLMENT_SECRET_CREATED = "enrolment.secret_created", "Fleet enrolment secret created"
    ENROLMENT_SECRET_ROTATED = "enrolment.secret_rotated", "Fleet enrolment secret rotated"


def hash_token(token: str) -> str:
    # Tokens are 32 random bytes: a fast hash is enough, no salt or stretching needed.
    return hashlib.sha256(token.encode()).hexdigest()


class UploadServer(models.Model):
    """An upload server allowed to post status reports, with its latest report's figures.

    Registered by hand (host_id empty) or enrolled by the host itself with the fleet enrolment
    secret (monitoring.enrolment): one entry per host, however many worker processes it runs.
    A server is gone once it deregistered at an orderly shutdown or a scale-in terminated it
    (fleet.membership): its token is refused, it no longer counts, and no alert watches it.
    """

    name = models.CharField(max_length=100, unique=True, validators=[server_name_validator])
    # Who the host says it is at enrolment (instance id or host name); unique, so two enrolments
    # of one host at the same moment still make one entry.
    host_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    instance_id = models.CharField(max_length=100, blank=True)
    # The scaling group the host named at enrolment, or the fleet saw it in (fleet.membership):
    # a group's name or its AWS group name, not a key (monitoring knows nothing of the fleet).
    scaling_group = models.CharField(max_length=255, blank=True)
    enrolled_at = models.DateTimeField(null=True, blank=True)
    gone_at = models.DateTimeField(null=True, blank=True)
    gone_reason = models.CharField(max_length=300, blank=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_prefix = models.CharField(max_length=TOKEN_PREFIX_CHARS, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    boot_id = models.CharField(max_length=64, blank=True)
    last_sequence = models.BigIntegerField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    silent_after = models.DateTimeField(null=True, blank=True, db_index=True)
    report_interval_seconds = models.PositiveIntegerField(default=5)
    last_cpu_percent = models.FloatField(null=True, blank=True)
    last_config_version = models.BigIntegerField(null=True, blank=True)
    last_uploads_in_progress = models.PositiveIntegerField(default=0)
    last_bytes_in_flight = models.PositiveBigIntegerField(default=0)
    # Rows of upload_limits the server's gate skipped as unparseable, from its latest report.
    last_bad_rows = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def live(cls, now=None) -> models.QuerySet:
        now = now or timezone.now()
        return cls.objects.filter(revoked_at=None, gone_at=None, silent_after__gt=now)

    @classmethod
    def live_count(cls, now=None) -> int:
        """Upload servers that reported within 3 of their intervals.

        While none is live (before the first report, or while reports cannot reach us) it is
        the fleet's configured size: dividing by 1 would let every server admit the whole
        fleet-wide limit.
        """
        return cls.live(now).count() or max(1, settings.FLEET_CONFIGURED_SERVER_COUNT)

    def issue_token(self) -> str:
        """A new token, shown once; only its hash is kept. Replaces any earlier token."""
        token = f"uos_{secrets.token_urlsafe(32)}"
        self.token_hash = hash_token(token)
        self.token_prefix = token[:TOKEN_PREFIX_CHARS]
        return token

    def token_matches(self, token: str) -> bool:
        return hmac.compare_digest(self.token_hash, hash_token(token))

    @property
    def is_enrolled(self) -> bool:
        return self.host_id is not None

    def is_silent(self, now=None) -> bool:
        return self.silent_after is None or self.silent_after <= (now or timezone.now())

    @staticmethod
    def silent_after_for(seen_at, interval_seconds: int):
        return seen_at + timedelta(seconds=SILENT_AFTER_INTERVALS * interval_seconds)


class ServerBoot(models.Model):
    """The highest report sequence seen from one boot of a server: a report whose sequence is
    not above it is a retry or a replay, counted once, whichever boot the server is on now.
    Kept for METRICS_MINUTE_RETENTION_DAYS after the boot's last report."""

    server = models.ForeignKey(UploadServer, on_delete=models.CASCADE, related_name="boots")
    boot_id = models.CharField(max_length=64, blank=True)
    last_sequence = models.BigIntegerField()
    last_seen_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["server", "boot_id"], name="server_boot_unique")]


class ServerReport(models.Model):
    """One status report, kept raw for a short window (settings.METRICS_RAW_RETENTION)."""

    server = models.ForeignKey(UploadServer, on_delete=models.CASCADE, related_name="reports")
    sequence = models.BigIntegerField()
    received_at = models.DateTimeField(db_index=True)
    interval_seconds = models.PositiveIntegerField()
    cpu_percent = models.FloatField()
    config_version = models.BigIntegerField()
    uploads_in_progress = models.PositiveIntegerField()
    bytes_in_flight = models.PositiveBigIntegerField()
    admitted = models.PositiveIntegerField()
    throttled = models.PositiveIntegerField()
    timed_out = models.PositiveIntegerField()
    completed = models.PositiveIntegerField()
    failed = models.PositiveIntegerField(default=0)
    # What the clients' shadow limits would have throttled (0 when no client has any).
    would_have_throttled = models.PositiveIntegerField(default=0, db_default=0)
    # Per client id: {"uploads_in_progress", "bytes_in_flight", "admitted", "throttled",
    # "timed_out", "completed", "failed"}; rolled up per partner each minute.
    clients = models.JSONField(default=dict)

    class Meta:
        indexes = [models.Index(fields=["server", "received_at"], name="report_server_time_idx")]


class Rollup(models.Model):
    """One bucket of one series: the value per minute averaged over the bucket, with extremes.

    A series is (metric, subject): subject is "fleet", "server:<name>", "client:<client id>",
    "queue:<name>" or "instance:<id>". A minute bucket holds one value (count 1); coarser
    buckets hold the sum and count of their minute values, so value = total / count at every
    level, for gauges (uploads in progress) and per-minute counts (throttled) alike.
    """

    metric = models.CharField(max_length=40)
    subject = models.CharField(max_length=255)
    resolution_seconds = models.PositiveIntegerField()
    bucket_start = models.DateTimeField()
    sample_count = models.PositiveIntegerField()
    total = models.FloatField()
    minimum = models.FloatField()
    maximum = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["metric", "subject", "resolution_seconds", "bucket_start"], name="rollup_unique_bucket"
            )
        ]
        indexes = [models.Index(fields=["metric", "resolution_seconds", "bucket_start"], name="rollup_chart_idx")]

    @property
    def value(self) -> float:
        return self.total / self.sample_count


class RollupWatermark(models.Model):
    """Up to when each resolution has been rolled up: the rollup job resumes from here."""

    resolution_seconds = models.PositiveIntegerField(unique=True)
    rolled_until = models.DateTimeField()


class MetricSource(models.Model):
    """Something the worker polls every minute through boto3, and how that went last time."""

    class Kind(models.TextChoices):
        AUTOSCALING_CPU = "autoscaling_cpu", "CloudWatch CPU of an Auto Scaling group"
        SQS_QUEUE = "sqs_queue", "SQS queue depth"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    name = models.CharField(max_length=255, help_text="The Auto Scaling group name or the SQS queue name.")
    enabled = models.BooleanField(default=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "name"], name="metric_source_unique")]
        ordering = ["kind", "name"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.name}"

    @property
    def failing(self) -> bool:
        return bool(self.last_error) and (
            self.last_success_at is None or (self.last_error_at and self.last_error_at > self.last_success_at)
        )


ENROLMENT_SECRET_PREFIX_CHARS = 8


class EnrolmentSecret(models.Model):
    """The fleet enrolment secret hosts enrol with (only its hash is kept).

    One is current; a rotated one may stay valid a while (`valid_until`) so hosts starting with
    the old secret still enrol until their launch configuration carries the new one.
    """

    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    secret_prefix = models.CharField(max_length=ENROLMENT_SECRET_PREFIX_CHARS, editable=False)
    # True for the current secret, NULL for earlier ones: a unique column allows one True.
    current = models.BooleanField(null=True, unique=True, default=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    valid_until = models.DateTimeField(null=True, blank=True, help_text="Empty while current.")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"enrolment secret {self.secret_prefix}…"

    @classmethod
    def valid(cls, now=None) -> models.QuerySet:
        now = now or timezone.now()
        return cls.objects.filter(models.Q(current=True) | models.Q(valid_until__gt=now))

    def issue(self) -> str:
        """A new secret, shown once; only its hash is kept."""
        secret = f"uoe_{secrets.token_urlsafe(32)}"
        self.secret_hash = hash_token(secret)
        self.secret_prefix = secret[:ENROLMENT_SECRET_PREFIX_CHARS]
        return secret


class EnrolmentFailure(models.Model):
    """One enrolment with a wrong secret, by address: enough of them and the address waits."""

    address = models.CharField(max_length=64)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["address", "at"], name="enrolment_failure_idx")]
