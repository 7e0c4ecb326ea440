import re
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from core.forms import MIN_ONE_MESSAGE, ByteSizeField, Int32Field, ReasonField, RevisionField
from core.units import format_bytes_exact
from partners.models import BYTE_LIMIT_FIELDS, LIMIT_FIELDS, LOAD_CONTROL_FIELDS, SHADOW_FIELDS, FleetSettings, Partner

NO_LIMIT_HELP = "Empty means no limit."
# What str.splitlines() breaks on: none of it belongs in a reason sent in an HTTP response.
LINE_BREAK_RE = re.compile(r"[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def limit_form_field(name: str, label: str) -> forms.Field:
    if name in BYTE_LIMIT_FIELDS:
        return ByteSizeField(label=label, required=False, help_text=NO_LIMIT_HELP)
    return Int32Field(
        label=label,
        required=False,
        min_value=1,
        error_messages={"min_value": MIN_ONE_MESSAGE},
        widget=forms.NumberInput(attrs={"placeholder": "no limit", "min": 1}),
        help_text=NO_LIMIT_HELP,
    )


LIMIT_LABELS = {
    "requests_per_minute": "Requests per minute",
    "burst": "Burst",
    "max_concurrent_uploads": "Concurrent uploads",
    "max_bytes_in_flight": "Bytes in flight",
    "daily_upload_bytes": "Upload bytes per day (UTC)",
}


def check_burst_has_rate(form: forms.Form, prefix: str = "") -> None:
    if (
        form.cleaned_data.get(f"{prefix}burst") is not None
        and form.cleaned_data.get(f"{prefix}requests_per_minute") is None
    ):
        form.add_error(f"{prefix}burst", "A burst needs a requests-per-minute rate to go with it.")


def ceiling_text(name: str, ceiling: int) -> str:
    """A ceiling as the form shows it: bytes in units (exactly), counts as they are."""
    return format_bytes_exact(ceiling) if name in BYTE_LIMIT_FIELDS else str(ceiling)


class LimitsForm(forms.Form):
    """A partner's (or the defaults') five limits. Ceilings apply when given (managers)."""

    reason = ReasonField()
    revision = RevisionField()

    def __init__(self, *args, ceilings: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.ceilings = ceilings
        for name in reversed(LIMIT_FIELDS):
            field = limit_form_field(name, LIMIT_LABELS[name])
            ceiling = (ceilings or {}).get(name)
            if ceiling is not None:
                field.help_text = f"At most {ceiling_text(name, ceiling)} (ceiling set by ops)."
            self.fields = {name: field, **self.fields}

    def clean(self):
        cleaned = super().clean()
        check_burst_has_rate(self)
        for name, ceiling in (self.ceilings or {}).items():
            self._check_ceiling(name, ceiling)
        return cleaned

    def _check_ceiling(self, name: str, ceiling: int | None) -> None:
        if ceiling is None or name in self.errors:
            return
        value = self.cleaned_data.get(name)
        shown = ceiling_text(name, ceiling)
        if value is None:
            self.add_error(name, f"Cannot be unlimited: the ceiling set by ops is {shown}.")
        elif value > ceiling:
            self.add_error(name, f"Above the ceiling set by ops ({shown}).")

    def limits(self) -> dict:
        return {name: self.cleaned_data[name] for name in LIMIT_FIELDS}


SHADOW_HELP = "Empty means no shadow value: the limit in force is used."


class ShadowLimitsForm(forms.Form):
    """Shadow values beside the limits in force: counted by the gates, never enforced.
    Managers stay within the partner's ceilings, as for the limits themselves."""

    reason = ReasonField()
    revision = RevisionField()

    def __init__(self, *args, ceilings: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.ceilings = ceilings
        for name in reversed(LIMIT_FIELDS):
            field = limit_form_field(name, f"Shadow: {LIMIT_LABELS[name][0].lower()}{LIMIT_LABELS[name][1:]}")
            field.help_text = SHADOW_HELP
            field.widget.attrs["placeholder"] = "none"
            ceiling = (ceilings or {}).get(name)
            if ceiling is not None:
                field.help_text = f"At most {ceiling_text(name, ceiling)} (ceiling set by ops). {SHADOW_HELP}"
            self.fields = {f"shadow_{name}": field, **self.fields}

    def clean(self):
        cleaned = super().clean()
        for name, ceiling in (self.ceilings or {}).items():
            field_name = f"shadow_{name}"
            value = cleaned.get(field_name)
            if ceiling is None or value is None or field_name in self.errors:
                continue
            if value > ceiling:
                self.add_error(field_name, f"Above the ceiling set by ops ({ceiling_text(name, ceiling)}).")
        return cleaned

    def shadow_values(self) -> dict:
        return {name: self.cleaned_data[name] for name in SHADOW_FIELDS}


def _user_choices(partner: Partner | None = None):
    """Active users, and the partner's own managers even when inactive: a save of the settings
    keeps a manager nobody unticked (an inactive one may come back)."""
    users = get_user_model().objects.filter(is_active=True)
    if partner is not None and partner.pk:
        users = users | get_user_model().objects.filter(managed_partners=partner)
    return users.distinct().order_by("username")


class ManagerChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, user) -> str:
        return user.get_username() if user.is_active else f"{user.get_username()} (inactive)"


class PartnerForm(forms.ModelForm):
    """What only ops set: who the partner is, who manages it, and its ceilings."""

    reason = ReasonField()
    revision = RevisionField()
    managers = ManagerChoiceField(queryset=_user_choices(), required=False)

    class Meta:
        model = Partner
        fields = ["name", "slug", "client_id", "contact_email", "priority", "managers"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["managers"].queryset = _user_choices(self.instance)
        if self.instance.pk is None:
            del self.fields["revision"]  # a new partner has no revision to be stale against
        for name in LIMIT_FIELDS:
            label = LIMIT_LABELS[name]
            field = limit_form_field(name, f"Ceiling: {label[0].lower()}{label[1:]}")
            field.help_text = "Managers cannot set more than this. Empty means no ceiling."
            field.initial = getattr(self.instance, f"ceiling_{name}", None)
            self.fields[f"ceiling_{name}"] = field

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk:
            for name in LIMIT_FIELDS:
                self._check_ceiling_covers_limit(name)
        return cleaned

    def _check_ceiling_covers_limit(self, name: str) -> None:
        ceiling = self.cleaned_data.get(f"ceiling_{name}")
        current = getattr(self.instance, name)
        if ceiling is not None and current is not None and current > ceiling:
            shown = format_bytes_exact(current) if name in BYTE_LIMIT_FIELDS else current
            self.add_error(f"ceiling_{name}", f"Below the limit in force ({shown}): lower the limit first.")

    def partner_values(self) -> dict:
        values = {name: self.cleaned_data[name] for name in self._meta.fields if name != "managers"}
        values.update({f"ceiling_{n}": self.cleaned_data[f"ceiling_{n}"] for n in LIMIT_FIELDS})
        return values


# How long a pause lasts: during an incident ops pick a preset; "at" takes the time field.
PAUSE_FOR_CHOICES = [
    ("30", "30 min"),
    ("60", "1 h"),
    ("240", "4 h"),
    ("", "until resumed by hand"),
    ("at", "until a set time"),
]


class PauseForm(forms.Form):
    reason = ReasonField(error_messages={"required": "A pause needs a reason: partners see it in the 503 response."})
    pause_for = forms.ChoiceField(
        label="Resume automatically",
        choices=PAUSE_FOR_CHOICES,
        required=False,
        initial="60",
        widget=forms.RadioSelect,
    )
    resume_at = forms.DateTimeField(
        label="Resume at (UTC)",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
        help_text="With “until a set time”: when the imports resume, in UTC.",
    )

    def clean_reason(self):
        reason = self.cleaned_data["reason"]
        if reason and LINE_BREAK_RE.search(reason):
            raise forms.ValidationError("One line only: partners get the reason in an HTTP response and its headers.")
        return reason
    def __init__(self, *args, all_partners: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if all_partners:
            # Every partner's imports stop: one checkbox so a stray click pauses nothing.
            self.fields["confirm"] = forms.BooleanField(
                label="Yes, stop every partner's imports",
                error_messages={"required": "Tick the box to confirm: this stops every partner's imports."},
            )

    def clean_resume_at(self):
        resume_at = self.cleaned_data.get("resume_at")
        if resume_at is not None and resume_at <= timezone.now():
            raise forms.ValidationError("The resume time must be in the future.")
        return resume_at

    def clean(self):
        cleaned = super().clean()
        pause_for = cleaned.get("pause_for", "")
        if pause_for == "at":
            if cleaned.get("resume_at") is None and "resume_at" not in self.errors:
                self.add_error("resume_at", "Say when the imports resume, or pick another choice.")
        elif pause_for:
            cleaned["resume_at"] = timezone.now() + timedelta(minutes=int(pause_for))
        elif "pause_for" in self.data or self.add_prefix("pause_for") in self.data:
            cleaned["resume_at"] = None  # until resumed by hand, whatever the time field says
        return cleaned


class ResumeForm(forms.Form):
    reason = ReasonField(required=False)


class OverrideForm(LimitsForm):
    """Temporary limits: the form opens with the limits in force; the ones changed apply
    until the end time, then the old values come back."""

    ends_at = forms.DateTimeField(
        label="Until (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=PauseForm.base_fields["resume_at"].input_formats,
        error_messages={"required": "Say when the temporary limits end."},
    )

    def __init__(self, *args, current: dict, covered: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.current = current
        self.covered = covered
        self.fields["ends_at"].help_text = (
            f"At most {settings.OVERRIDE_MAX_DAYS} days ahead. You get an email "
            f"{settings.OVERRIDE_REMINDER_MINUTES} min before the end."
        )
        self.fields = {
            **{k: v for k, v in self.fields.items() if k not in ("reason", "revision")},
            "reason": self.fields["reason"],
            "revision": self.fields["revision"],
        }

    def clean_ends_at(self):
        ends_at = self.cleaned_data["ends_at"]
        now = timezone.now()
        if ends_at <= now:
            raise forms.ValidationError("The end time must be in the future.")
        if ends_at > now + timedelta(days=settings.OVERRIDE_MAX_DAYS):
            raise forms.ValidationError(
                f"At most {settings.OVERRIDE_MAX_DAYS} days ahead: for longer, change the limits themselves."
            )
        return ends_at

    def clean(self):
        cleaned = super().clean()
        if any(name in self.errors for name in LIMIT_FIELDS):
            return cleaned
        changed = self.changed_limits()
        if not changed:
            raise forms.ValidationError("These are the limits in force already: change at least one.")
        for name in changed:
            if name in self.covered:
                other = self.covered[name]
                self.add_error(
                    name, f"Already under {other.label()} until {other.ends_at:%Y-%m-%d %H:%M} UTC: end that one first."
                )
        return cleaned

    def _check_ceiling(self, name: str, ceiling: int | None) -> None:
        # Only what the override changes must fit the ceilings; the rest stays as ops left it.
        if self.cleaned_data.get(name) != self.current.get(name):
            super()._check_ceiling(name, ceiling)

    def changed_limits(self) -> dict:
        return {
            name: self.cleaned_data.get(name)
            for name in LIMIT_FIELDS
            if self.cleaned_data.get(name) != self.current.get(name)
        }


class LoadControlForm(forms.ModelForm):
    """Ops' settings of load-coupled limits (FleetSettings), with the reason for the audit log."""

    reason = ReasonField()
    revision = RevisionField()

    class Meta:
        model = FleetSettings
        fields = list(LOAD_CONTROL_FIELDS)

    def settings_values(self) -> dict:
        return {name: self.cleaned_data[name] for name in LOAD_CONTROL_FIELDS}
