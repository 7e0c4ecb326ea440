"""What the pages that combine the other apps keep: the weekly summary emails sent."""

from django.db import models


class OperationsAudit(models.TextChoices):
    """The dashboard's own verbs in the audit log (core.audit): day-2 commands."""

    CONFIG_CHECKED = "config.checked", "Configuration checked"


class WeeklySummary(models.Model):
    """One row per week whose summary email to ops was claimed: a task that runs twice
    sends once (the unique week is the claim)."""

    week_start = models.DateField(unique=True, help_text="The Monday (UTC) the summarised week starts.")
    claimed_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    recipients = models.JSONField(default=list)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-week_start"]
        verbose_name_plural = "weekly summaries"

    def __str__(self) -> str:
        return f"weekly summary of {self.week_start}"
