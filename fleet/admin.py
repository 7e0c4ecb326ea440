"""Scaling groups are configured here by ops, audited; actions and decisions are read-only."""

from django import forms
from django.contrib import admin
from django.db import transaction
from django.forms.models import model_to_dict

from core import audit, roles
from core.admin import ReadOnlyAdmin
from core.forms import ReasonField
from fleet.models import PolicyDecision, ScalingAction, ScalingAudit, ScalingGroup

GROUP_FIELDS = [
    "name",
    "backend",
    "aws_group_name",
    "server_name_prefix",
    "min_capacity",
    "max_capacity",
    "cooldown_seconds",
]


class ScalingGroupForm(forms.ModelForm):
    change_reason = ReasonField(label="Reason (kept in the audit log)")

    class Meta:
        model = ScalingGroup
        fields = GROUP_FIELDS


@admin.register(ScalingGroup)
class ScalingGroupAdmin(ReadOnlyAdmin):
    form = ScalingGroupForm
    list_display = [
        "name",
        "backend",
        "aws_group_name",
        "min_capacity",
        "max_capacity",
        "cooldown_seconds",
        "desired_capacity",
    ]

    def has_add_permission(self, request, obj=None) -> bool:
        return roles.is_ops(request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        return roles.is_ops(request.user)

    def save_model(self, request, obj, form, change) -> None:
        before = model_to_dict(ScalingGroup.objects.get(pk=obj.pk), fields=GROUP_FIELDS) if change else {}
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            before, after = audit.diff(before, model_to_dict(obj, fields=GROUP_FIELDS))
            audit.record(
                request.user,
                ScalingAudit.SCALING_GROUP_CHANGED,
                f"scaling group {obj.name}",
                before,
                after,
                form.cleaned_data["change_reason"],
                obj,
            )


@admin.register(ScalingAction)
class ScalingActionAdmin(ReadOnlyAdmin):
    list_display = ["requested_at", "group", "requested_by_name", "from_capacity", "to_capacity", "status"]
    list_filter = ["status", "group"]


@admin.register(PolicyDecision)
class PolicyDecisionAdmin(ReadOnlyAdmin):
    list_display = ["evaluated_minute", "group", "outcome", "reason"]
    list_filter = ["outcome", "group"]
