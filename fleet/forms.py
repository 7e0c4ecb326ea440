from django import forms

from core.forms import Int32Field, ReasonField
from fleet.models import AWS_POLICY_FIELDS, POLICY_FIELDS, ScalingGroup, ScalingPolicy


class ScaleForm(forms.Form):
    """The confirmation: from → to, a reason, and the key that makes a double submit scale once."""

    from_capacity = Int32Field(min_value=0, widget=forms.HiddenInput)
    to_capacity = Int32Field(min_value=0, widget=forms.HiddenInput)
    idempotency_key = forms.UUIDField(widget=forms.HiddenInput)
    reason = ReasonField()

    def __init__(self, *args, group: ScalingGroup, **kwargs):
        super().__init__(*args, **kwargs)
        self.group = group

    def clean(self):
        cleaned = super().clean()
        to_capacity, from_capacity = cleaned.get("to_capacity"), cleaned.get("from_capacity")
        if to_capacity is not None:
            problem = self.group.bounds_problem(to_capacity)
            if problem:
                raise forms.ValidationError(f"{problem} Nothing was changed.")
            if to_capacity == from_capacity:
                raise forms.ValidationError(f"{self.group.name} is already at {to_capacity}.")
        return cleaned


class PolicyForm(forms.ModelForm):
    reason = ReasonField()

    class Meta:
        model = ScalingPolicy
        fields = POLICY_FIELDS


class AwsPolicyForm(forms.ModelForm):
    """An AWS group's policy: what AWS's own target tracking takes (fleet.aws_policy)."""

    reason = ReasonField()

    class Meta:
        model = ScalingPolicy
        fields = AWS_POLICY_FIELDS
        labels = {"never_scale_in": "Never scale in (DisableScaleIn)"}


def policy_form_for(group: ScalingGroup, *args, **kwargs) -> forms.ModelForm:
    form_class = AwsPolicyForm if group.is_aws else PolicyForm
    return form_class(*args, prefix=f"policy-{group.pk}", **kwargs)
