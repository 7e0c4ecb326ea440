"""Partners, their limits and ceilings, the defaults, overrides (pauses and temporary limits) and
the shared config table `upload_limits`."""

from datetime import timedelta

from django.conf import settings
from django.contrib.contenttypes.fields import GenericRelation
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

from core.bounds import bigint_max, int32_max

LIMIT_FIELDS = (
    "requests_per_minute",
    "burst",
    "max_concurrent_uploads",
    "max_bytes_in_flight",
    "daily_upload_bytes",
)
BYTE_LIMIT_FIELDS = ("max_bytes_in_flight", "daily_upload_bytes")
# Shadow mode: candidate values evaluated and counted by the gates, never enforced.
SHADOW_FIELDS = tuple(f"shadow_{name}" for name in LIMIT_FIELDS)
# The limits load-coupled limits may lower for bulk partners.
LOAD_COUPLED_FIELDS = ("max_concurrent_uploads", "max_bytes_in_flight")
DEFAULTS_CLIENT_ID = "*"

client_id_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,254}$",
    "Use letters, digits and . _ : @ - (up to 255), starting with a letter or digit, "
    "exactly as the partner's OAuth client id.",
)


class Priority(models.TextChoices):
    INTERACTIVE = "interactive", "Interactive"
    BULK = "bulk", "Bulk"


def _limit_field(verbose_name: str, big: bool = False, help_text: str = ""):
    field_class = models.PositiveBigIntegerField if big else models.PositiveIntegerField
    maximum = bigint_max() if big else int32_max()
    return field_class(
        verbose_name, null=True, blank=True, validators=[MinValueValidator(1), maximum], help_text=help_text
    )


class UploadLimits(models.Model):
    """The five limits the upload gate enforces. Null means no limit. All are fleet-wide."""

    requests_per_minute = _limit_field("requests per minute")
    burst = _limit_field("burst", help_text="Requests that may arrive at once above the rate.")
    max_concurrent_uploads = _limit_field("concurrent uploads")
    max_bytes_in_flight = _limit_field("bytes in flight", big=True)
    daily_upload_bytes = _limit_field("upload bytes per day (UTC)", big=True)

    class Meta:
        abstract = True

    def limit_values(self) -> dict[str, int | None]:
        return {name: getattr(self, name) for name in LIMIT_FIELDS}


class PartnerQuerySet(models.QuerySet):
    def paused(self) -> "PartnerQuerySet":
        """Partners with a pause of their own in force (the pause of all partners aside)."""
        return self.filter(models.Exists(Override.objects.active().pauses().filter(partner=models.OuterRef("pk"))))

    def with_pause(self) -> "PartnerQuerySet":
        """Prefetch each partner's pause in force, for lists that show it."""
        return self.prefetch_related(
            models.Prefetch(
                "overrides",
                queryset=Override.objects.active().pauses().select_related("created_by"),
                to_attr="active_pauses",
            )
        )


class Partner(UploadLimits):
    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=60, unique=True)
    client_id = models.CharField("OAuth client id", max_length=255, unique=True, validators=[client_id_validator])
    contact_email = models.EmailField(blank=True)
    priority = models.CharField(max_length=16, choices=Priority.choices, default=Priority.BULK)
    managers = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="managed_partners", blank=True)

    # Ceilings: set by ops only; a partner manager's limits must stay at or below them.
    ceiling_requests_per_minute = _limit_field("ceiling: requests per minute")
    ceiling_burst = _limit_field("ceiling: burst")
    ceiling_max_concurrent_uploads = _limit_field("ceiling: concurrent uploads")
    ceiling_max_bytes_in_flight = _limit_field("ceiling: bytes in flight", big=True)
    ceiling_daily_upload_bytes = _limit_field("ceiling: upload bytes per day", big=True)

    # Shadow values (null = none): the gates count what they would have throttled.
    shadow_requests_per_minute = _limit_field("shadow: requests per minute")
    shadow_burst = _limit_field("shadow: burst")
    shadow_max_concurrent_uploads = _limit_field("shadow: concurrent uploads")
    shadow_max_bytes_in_flight = _limit_field("shadow: bytes in flight", big=True)
    shadow_daily_upload_bytes = _limit_field("shadow: upload bytes per day (UTC)", big=True)

    # Bumped by every settings or limits change: a form opened at an older revision is stale.
    revision = models.PositiveIntegerField(default=0)
    changed_at = models.DateTimeField(default=timezone.now)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    audit_entries = GenericRelation(
        "core.AuditEntry", content_type_field="target_type", object_id_field="target_id", related_query_name="partner"
    )

    # Load-coupled limits (fleet.load_coupling): the values in force while the fleet is
    # loaded. Null means the configured limit holds; never above the configured limit.
    effective_max_concurrent_uploads = models.PositiveIntegerField(null=True, blank=True)
    effective_max_bytes_in_flight = models.PositiveBigIntegerField(null=True, blank=True)
    effective_reason = models.TextField(blank=True)
    effective_changed_at = models.DateTimeField(null=True, blank=True)

    objects = PartnerQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def refresh_from_db(self, *args, **kwargs):
        self.__dict__.pop("active_pauses", None)
        super().refresh_from_db(*args, **kwargs)

    @property
    def active_pause(self) -> "Override | None":
        """The pause of this partner's imports in force, if any (not the pause of all partners)."""
        if "active_pauses" not in self.__dict__:
            self.active_pauses = (
                []
                if self.pk is None
                else list(Override.objects.active().pauses().filter(partner=self).select_related("created_by"))
            )
        return self.active_pauses[0] if self.active_pauses else None

    @property
    def paused(self) -> bool:
        return self.active_pause is not None

    def get_absolute_url(self) -> str:
        return reverse("partners:detail", args=[self.slug])

    def ceilings(self) -> dict[str, int | None]:
        return {name: getattr(self, f"ceiling_{name}") for name in LIMIT_FIELDS}

    def shadow_values(self) -> dict[str, int | None]:
        return {name: getattr(self, name) for name in SHADOW_FIELDS}

    def has_shadow(self) -> bool:
        return any(value is not None for value in self.shadow_values().values())

    def has_limits(self) -> bool:
        return any(value is not None for value in self.limit_values().values())

    def effective_value(self, name: str) -> int | None:
        """The limit in force: the load-coupled value while it is below the configured one."""
        configured = getattr(self, name)
        if name not in LOAD_COUPLED_FIELDS:
            return configured
        effective = getattr(self, f"effective_{name}")
        if configured is None or effective is None or effective >= configured:
            return configured
        return effective

    def reduced_limits(self) -> list[str]:
        """Names of the limits lowered for load right now."""
        return [name for name in LOAD_COUPLED_FIELDS if self.effective_value(name) != getattr(self, name)]

    def effective_limit_values(self) -> dict[str, int | None]:
        return {name: self.effective_value(name) for name in LIMIT_FIELDS}


LOAD_CONTROL_FIELDS = (
    "load_control_enabled",
    "load_cpu_target_percent",
    "load_window_seconds",
    "load_reserved_share_percent",
    "load_decrease_factor",
    "load_increase_step_percent",
    "load_server_upload_capacity",
)


class FleetSettings(UploadLimits):
    """One row: the `*` defaults and the settings of load-coupled limits."""

    revision = models.PositiveIntegerField(default=0)
    changed_at = models.DateTimeField(default=timezone.now)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    # Load-coupled limits: off by default; ops set them on the controls page.
    load_control_enabled = models.BooleanField("load-coupled limits on", default=False)
    load_cpu_target_percent = models.FloatField(
        "fleet CPU target %", default=70.0, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    load_window_seconds = models.PositiveIntegerField(
        "window (seconds)",
        default=300,
        validators=[MinValueValidator(60), int32_max()],
        help_text="CPU must stay above (or below) the target this long before a step.",
    )
    load_reserved_share_percent = models.FloatField(
        "reserved share %",
        default=30.0,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="Of the fleet's capacity, kept for direct users and interactive partners.",
    )
    load_decrease_factor = models.FloatField(
        "decrease factor",
        default=0.7,
        validators=[MinValueValidator(0.05), MaxValueValidator(0.95)],
        help_text="Effective limits are multiplied by this at each overloaded window.",
    )
    load_increase_step_percent = models.FloatField(
        "increase step %",
        default=10.0,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Of the configured limit, added back at each quiet window.",
    )
    load_server_upload_capacity = models.PositiveIntegerField(
        "uploads one server carries",
        default=80,
        validators=[MinValueValidator(1), int32_max()],
        help_text="Concurrent uploads one upload server carries at full CPU; sizes the reserved share.",
    )

    class Meta:
        verbose_name = "fleet settings"
        verbose_name_plural = "fleet settings"

    def __str__(self) -> str:
        return "Defaults and load-coupled limits"

    @classmethod
    def load(cls, for_update: bool = False) -> "FleetSettings":
        queryset = cls.objects.select_for_update() if for_update else cls.objects
        try:
            return queryset.get(pk=1)
        except cls.DoesNotExist:
            cls.objects.get_or_create(pk=1)
            return queryset.get(pk=1)


class PartnerAudit(models.TextChoices):
    """The partners app's verbs in the audit log (core.audit)."""

    PARTNER_CREATED = "partner.created", "Partner created"
    PARTNER_CHANGED = "partner.changed", "Partner settings changed"
    LIMITS_CHANGED = "limits.changed", "Limits changed"
    PARTNER_PAUSED = "partner.paused", "Imports paused"
    PARTNER_RESUMED = "partner.resumed", "Imports resumed"
    ALL_PAUSED = "all.paused", "All partner imports paused"
    ALL_RESUMED = "all.resumed", "All partner imports resumed"
    DEFAULTS_CHANGED = "defaults.changed", "Default limits changed"
    OVERRIDE_STARTED = "override.started", "Temporary limits started"
    OVERRIDE_ENDED = "override.ended", "Temporary limits ended"
    SHADOW_CHANGED = "limits.shadow_changed", "Shadow limits changed"
    LOAD_CONTROL_CHANGED = "load.settings_changed", "Load-coupled limits settings changed"
    EFFECTIVE_LIMITS_CHANGED = "load.effective_changed", "Effective limits changed for load"


class OverrideKind(models.TextChoices):
    PAUSE = "pause", "Pause"
    LIMITS = "limits", "Temporary limits"


class OverrideState(models.TextChoices):
    ACTIVE = "active", "Active"
    EXPIRED = "expired", "Ended at its end time"
    ENDED_EARLY = "ended_early", "Ended by hand"


class OverrideQuerySet(models.QuerySet):
    def active(self) -> "OverrideQuerySet":
        return self.filter(state=OverrideState.ACTIVE)

    def pauses(self) -> "OverrideQuerySet":
        return self.filter(kind=OverrideKind.PAUSE)

    def active_pause_of(self, partner: "Partner | None") -> "Override | None":
        """The pause in force for this partner (None: the pause of all partners), if any."""
        return self.active().pauses().filter(partner=partner).select_related("created_by").first()


class Override(models.Model):
    """Something that overrides a partner's (partner None: every partner's) normal state for a
    while: a pause of its imports, or temporary limits (`values` replace `replaced`).

    Active until it ends: by hand, or by itself at `ends_at` (a pause may have none: it lasts until
    someone resumes it). Its author gets a reminder email before a set end; the end is audited.
    """

    partner = models.ForeignKey("Partner", null=True, blank=True, on_delete=models.PROTECT, related_name="overrides")
    kind = models.CharField(max_length=8, choices=OverrideKind.choices)
    values = models.JSONField(default=dict, blank=True, help_text="Limits applied: field → value.")
    replaced = models.JSONField(default=dict, blank=True, help_text="What they replaced; restored at the end.")
    reason = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField(null=True, blank=True, db_index=True)
    state = models.CharField(max_length=12, choices=OverrideState.choices, default=OverrideState.ACTIVE)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # None: no reminder (no author, no end time, or shorter than the reminder lead time).
    reminder_due_at = models.DateTimeField(null=True, blank=True)
    # Claimed with a conditional update before sending, so a retried or doubled job sends once.
    reminder_claimed_at = models.DateTimeField(null=True, blank=True)
    reminder_sent_at = models.DateTimeField(null=True, blank=True)
    reminder_error = models.TextField(blank=True)

    objects = OverrideQuerySet.as_manager()

    class Meta:
        ordering = ["ends_at", "id"]
        constraints = [
            # One pause in force per partner, and one of all partners (no partner: 0).
            models.UniqueConstraint(
                models.functions.Coalesce("partner", models.Value(0)),
                condition=models.Q(kind="pause", state="active"),
                name="override_one_active_pause",
            ),
            models.CheckConstraint(
                condition=models.Q(kind="pause") | (models.Q(partner__isnull=False) & models.Q(ends_at__isnull=False)),
                name="override_limits_of_a_partner_with_an_end",
            ),
        ]

    def __str__(self) -> str:
        until = f" until {self.ends_at:%Y-%m-%d %H:%M}" if self.ends_at else ""
        return f"override #{self.pk} of {self.subject_name}{until}"

    @property
    def is_pause(self) -> bool:
        return self.kind == OverrideKind.PAUSE

    @property
    def subject_name(self) -> str:
        return self.partner.name if self.partner_id else "all partners"

    @property
    def author_name(self) -> str:
        return self.created_by.get_username() if self.created_by_id else "system"

    def label(self) -> str:
        return f"override #{self.pk} by {self.author_name}"

    def restore_plan(self, partner: "Partner | None" = None) -> list[dict]:
        """Per field: what it is now, what the end restores, or that a later edit keeps it."""
        partner = partner or self.partner
        plan = []
        for name, applied in self.values.items():
            current = getattr(partner, name)
            plan.append(
                {
                    "name": name,
                    "applied": applied,
                    "current": current,
                    "restores": self.replaced.get(name),
                    "edited_since": current != applied,
                }
            )
        return plan

    @staticmethod
    def reminder_due(created_at, ends_at, has_author: bool):
        """When to remind the author: OVERRIDE_REMINDER_MINUTES before the end; None for an
        override without an author or an end, or shorter than that lead time."""
        if not has_author or ends_at is None:
            return None
        due = ends_at - timedelta(minutes=settings.OVERRIDE_REMINDER_MINUTES)
        return due if due > created_at else None

    def close(self, actor, state: str, now=None) -> None:
        """End it (state: expired or ended early); called under the lock of what it overrides."""
        self.state = state
        self.ended_at = now or timezone.now()
        self.ended_by = actor
        self.save(update_fields=["state", "ended_at", "ended_by"])

    def pause_state(self) -> dict:
        """The pause as the audit log shows it."""
        return {
            "paused": True,
            "pause_reason": self.reason,
            "resume_at": self.ends_at.isoformat() if self.ends_at else None,
        }


NOT_PAUSED = {"paused": False, "pause_reason": "", "resume_at": None}


class ConfigVersion(models.Model):
    """The global version counter of the shared config table (one row).

    Incremented with UPDATE … SET value = value + 1, whose row lock is held until commit:
    concurrent publishers queue on it, so versions commit in increasing order.
    """

    value = models.BigIntegerField(default=0)


class UploadLimitRow(models.Model):
    """A row of the shared config table `upload_limits` (docs/shared-config-table.md).

    Written only by partners.publisher; read by the upload servers in any language.
    """

    client_id = models.CharField(max_length=255, primary_key=True)
    requests_per_minute = models.IntegerField(null=True)
    burst = models.IntegerField(null=True)
    max_concurrent_uploads = models.IntegerField(null=True)
    max_bytes_in_flight = models.BigIntegerField(null=True)
    daily_upload_bytes = models.BigIntegerField(null=True)
    paused = models.BooleanField(default=False)
    pause_reason = models.TextField(default="")
    resume_at = models.DateTimeField(null=True)
    priority = models.CharField(max_length=16)
    version = models.BigIntegerField()
    updated_at = models.DateTimeField()
    all_partners_paused = models.BooleanField(default=False)
    all_partners_pause_reason = models.TextField(default="")
    all_partners_resume_at = models.DateTimeField(null=True)
    live_server_count = models.IntegerField(default=1)
    shadow_requests_per_minute = models.IntegerField(null=True)
    shadow_burst = models.IntegerField(null=True)
    shadow_max_concurrent_uploads = models.IntegerField(null=True)
    shadow_max_bytes_in_flight = models.BigIntegerField(null=True)
    shadow_daily_upload_bytes = models.BigIntegerField(null=True)
    reduced_limits = models.TextField(null=True)

    class Meta:
        db_table = "upload_limits"
        indexes = [models.Index(fields=["version"], name="upload_limits_version_idx")]

    @classmethod
    def published_version(cls) -> int | None:
        """The newest version in the table: what every upload server should have applied."""
        return cls.objects.aggregate(version=models.Max("version"))["version"]

    def __str__(self) -> str:
        return f"{self.client_id} @ v{self.version}"
