"""Scaling groups are configured here by ops, audited; actions and decisions are read-only."""

from django import forms
from django.contrib import admin
from django.db import transaction
from django.forms.models import model_to_dict

from dashboard import roles
from dashboard.models import PolicyDecision, ScalingAction, ScalingGroup
from partners.changes import record
from partners.forms import ReasonField
from partners.admin import ReadOnlyAdmin as OpsOnlyAdmin
from partners.models import AuditAction

GROUP_FIELDS = ["name", "backend", "aws_group_name", "server_name_prefix", "min_capacity", "max_capacity",
                "cooldown_seconds"]


class ScalingGroupForm(forms.ModelForm):
    change_reason = ReasonField(label="Reason (kept in the audit log)")

    class Meta:
        model = ScalingGroup
        fields = GROUP_FIELDS


@admin.register(ScalingGroup)
class ScalingGroupAdmin(OpsOnlyAdmin):
    form = ScalingGroupForm
    list_display = ["name", "backend", "aws_group_name", "min_capacity", "max_capacity", "cooldown_seconds",
                    "desired_capacity"]

    def has_add_permission(self, request, obj=None) -> bool:
        return roles.is_ops(request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        return roles.is_ops(request.user)

    def save_model(self, request, obj, form, change) -> None:
        before = model_to_dict(ScalingGroup.objects.get(pk=obj.pk), fields=GROUP_FIELDS) if change else {}
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            after = model_to_dict(obj, fields=GROUP_FIELDS)
            changed = [key for key in after if before.get(key) != after[key]]
            record(request.user, AuditAction.SCALING_GROUP_CHANGED, f"scaling group {obj.name}",
                   {key: before[key] for key in changed if key in before},
                   {key: after[key] for key in changed}, form.cleaned_data["change_reason"])


@admin.register(ScalingAction)
class ScalingActionAdmin(OpsOnlyAdmin):
    list_display = ["requested_at", "group", "requested_by_name", "from_capacity", "to_capacity", "status"]
    list_filter = ["status", "group"]


@admin.register(PolicyDecision)
class PolicyDecisionAdmin(OpsOnlyAdmin):
    list_display = ["evaluated_minute", "group", "outcome", "reason"]
    list_filter = ["outcome", "group"]
