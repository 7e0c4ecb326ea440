"""The audit log: who changed what, before → after, why and when. Append-only.

Every app writes it through core.audit.record(), inside the transaction that makes the change.
An entry may point at the object it is about (a partner, a scaling group, an alert rule), so a
page can list an object's history and the partners app can show managers only their partners'.
"""

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone


class AuditEntryQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError("Audit entries cannot be changed.")

    def delete(self):
        raise PermissionError("Audit entries cannot be deleted.")


class AuditEntry(models.Model):
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_name = models.CharField(max_length=150, help_text="“system” for automatic changes.")
    # A verb of the app that made the change ("limits.changed", "scaling.requested"); each app
    # registers its verbs' labels with core.audit.register_actions.
    action = models.CharField(max_length=40, db_index=True)
    target_type = models.ForeignKey(ContentType, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    target_id = models.PositiveBigIntegerField(null=True, blank=True)
    target = GenericForeignKey("target_type", "target_id")
    subject = models.CharField(max_length=200)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["target_type", "target_id", "created_at"], name="audit_target_idx")]

    def __str__(self) -> str:
        return f"{self.actor_name}: {self.action_label} ({self.subject})"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("Audit entries cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit entries cannot be deleted.")

    @property
    def action_label(self) -> str:
        from core.audit import action_label

        return action_label(self.action)

    def changes(self) -> list[tuple[str, object, object]]:
        """(field, before, after) for every field that changed, in a stable order."""
        names = list(dict.fromkeys([*self.before, *self.after]))
        return [(name, self.before.get(name), self.after.get(name)) for name in names]


class AccessAudit(models.TextChoices):
    """Core's own verbs: logins unlocked and temporary ops logins, made on the host by manage.py."""

    LOGIN_UNLOCKED = "login.unlocked", "Login unlocked"
    ROLES_CHANGED = "people.roles_changed", "Roles changed"
    TEMPORARY_OPS_LOGIN_CREATED = "login.temporary_ops_created", "Temporary ops login created"


class TemporaryLogin(models.Model):
    """A break-glass ops login (`manage.py temporary_ops_login`): refused after `expires_at`."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="temporary_login")
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.user} until {self.expires_at:%Y-%m-%d %H:%M} UTC"


class PasswordResetRequest(models.Model):
    """One request of a password reset email, counted by address and by email (core/password_reset.py)."""

    requested_at = models.DateTimeField(default=timezone.now, db_index=True)
    email = models.CharField(max_length=254, db_index=True)
    address = models.GenericIPAddressField(null=True, blank=True, db_index=True)
class WorkerHeartbeat(models.Model):
    """The django-q2 worker's last sign of life: one row (pk 1), rewritten every minute by a
    scheduled task (core.heartbeat.beat). Its age says whether rollups, alerts and the reverts
    of temporary limits are still running."""

    beat_at = models.DateTimeField()
    beaten_by = models.CharField(max_length=200, help_text="host:pid of the worker process that beat last.")

    def __str__(self) -> str:
        return f"heartbeat at {self.beat_at:%Y-%m-%d %H:%M:%S} from {self.beaten_by}"


class WorkerOutage(models.Model):
    """A stretch of time in which the worker's heartbeat was stale, noticed by a web process.

    Engineers get one email when it starts and one when it ends. Each email is claimed with a
    conditional update (notice_claimed_at), so of the web processes that notice at once exactly
    one sends it; a send that failed is tried again after core.heartbeat.NOTICE_RETRY_SECONDS.
    last_beat_at is unique: two processes that notice the same stale beat open one outage.
    """

    last_beat_at = models.DateTimeField(unique=True, help_text="The heartbeat that went stale.")
    noticed_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    stale_notice_sent_at = models.DateTimeField(null=True, blank=True)
    recovery_notice_sent_at = models.DateTimeField(null=True, blank=True)
    notice_claimed_at = models.DateTimeField(null=True, blank=True)
    last_notice_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-noticed_at"]

    def __str__(self) -> str:
        return f"worker outage noticed {self.noticed_at:%Y-%m-%d %H:%M}"
