from django import forms

from alerting.models import AlertRule, RuleKind, Silence
from core.forms import REASON_REQUIRED, ReasonField


class AlertRuleForm(forms.ModelForm):
    reason = ReasonField()
    runbook_url = forms.URLField(required=False, assume_scheme="https")

    class Meta:
        model = AlertRule
        fields = [
            "name",
            "slug",
            "kind",
            "metric",
            "subject",
            "aggregation",
            "window_seconds",
            "comparison",
            "threshold",
            "for_seconds",
            "resolve_after_seconds",
            "severity",
            "notify_engineers",
            "extra_recipients",
            "runbook_url",
            "repeat_interval_seconds",
            "enabled",
        ]
        widgets = {"extra_recipients": forms.Textarea(attrs={"rows": 2})}

    def clean_extra_recipients(self):
        value = self.cleaned_data["extra_recipients"]
        field = forms.EmailField()
        for address in value.replace(",", "\n").splitlines():
            if address.strip():
                field.clean(address.strip())
        return value

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("kind") == RuleKind.METRIC and not cleaned.get("metric"):
            self.add_error("metric", "A metric rule needs a metric.")
        return cleaned


class SilenceForm(forms.ModelForm):
    duration_minutes = forms.IntegerField(
        min_value=1, max_value=7 * 24 * 60, initial=60, help_text="The silence expires after this long."
    )

    class Meta:
        model = Silence
        fields = ["rule", "subject", "comment"]
        widgets = {"comment": forms.TextInput()}
        error_messages = {"comment": {"required": REASON_REQUIRED.replace("reason", "comment")}}


class ExpireSilenceForm(forms.Form):
    reason = ReasonField(required=False)
