"""The dashboard's own forms: the audit log's filters, the what-if (a partner's upload, its limits,
the fleet size) and the form that applies the what-if's proposed limits to the partner."""

from django import forms

from core.audit import action_choices
from core.forms import ByteSizeField
from core.units import format_bytes_exact
from fleet_sim.whatif import SIZE_MIXES, SizeMix, WhatIf, explicit_mix
from partners.forms import LIMIT_LABELS, LimitsForm, limit_form_field
from partners.models import Partner

EXPLICIT_SIZES = "explicit"
WHAT_IF_LIMITS = ("max_concurrent_uploads", "max_bytes_in_flight", "requests_per_minute")
# Bounds that keep one projection within a web request (fleet_sim.whatif.HORIZON_SECONDS).
MAX_FILES = 1_000_000
MAX_SERVERS = 16
MAX_FILE_BYTES = 5 * 10**12


class AuditFilterForm(forms.Form):
    partner = forms.ModelChoiceField(
        queryset=Partner.objects.none(), required=False, to_field_name="slug", empty_label="all partners"
    )
    actor = forms.CharField(required=False, label="Who")
    action = forms.ChoiceField(choices=[], required=False)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, partners=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["partner"].queryset = partners if partners is not None else Partner.objects.all()
        self.fields["action"].choices = [("", "all actions"), *action_choices()]


class WhatIfForm(forms.Form):
    partner = forms.ModelChoiceField(queryset=Partner.objects.none(), to_field_name="slug", empty_label=None)
    files = forms.IntegerField(label="Number of files", min_value=1, max_value=MAX_FILES, initial=2000)
    size_mix = forms.ChoiceField(
        label="Size mix",
        initial="large-videos",
        choices=[*((key, mix.label) for key, mix in SIZE_MIXES.items()), (EXPLICIT_SIZES, "explicit sizes (below)")],
    )
    smallest_file = ByteSizeField(
        label="Smallest file",
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "200 MB"}),
        help_text="With explicit sizes: e.g. 200 MB.",
    )
    largest_file = ByteSizeField(
        label="Largest file",
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "2 GB"}),
        help_text="With explicit sizes: e.g. 2 GB. Sizes spread evenly in between.",
    )
    servers = forms.IntegerField(
        label="Upload servers", min_value=1, max_value=MAX_SERVERS, help_text="Defaults to the servers live now."
    )

    def __init__(self, *args, partners=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["partner"].queryset = partners if partners is not None else Partner.objects.all()
        for name in WHAT_IF_LIMITS:
            field = limit_form_field(name, LIMIT_LABELS[name])
            field.help_text = "Fleet-wide; defaults to the partner's current limit. Empty means no limit."
            self.fields[name] = field

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("size_mix") == EXPLICIT_SIZES:
            self._check_explicit_sizes()
        return cleaned

    def _check_explicit_sizes(self) -> None:
        smallest, largest = self.cleaned_data.get("smallest_file"), self.cleaned_data.get("largest_file")
        for name, value in (("smallest_file", smallest), ("largest_file", largest)):
            if value is None and name not in self.errors:
                self.add_error(name, "Give a size when the mix is “explicit sizes”.")
            elif value is not None and value > MAX_FILE_BYTES:
                self.add_error(name, f"At most {format_bytes_exact(MAX_FILE_BYTES)} per file.")
        if smallest and largest and smallest > largest and "largest_file" not in self.errors:
            self.add_error("largest_file", "Must be at least the smallest file.")

    def mix(self) -> SizeMix:
        data = self.cleaned_data
        if data["size_mix"] == EXPLICIT_SIZES:
            return explicit_mix(data["smallest_file"], data["largest_file"])
        return SIZE_MIXES[data["size_mix"]]

    def limits(self) -> dict:
        return {name: self.cleaned_data[name] for name in WHAT_IF_LIMITS}

    def what_if(self, default_limits: dict) -> WhatIf:
        partner = self.cleaned_data["partner"]
        limits = self.limits()
        # The partner's burst goes with its rate; without a rate it means nothing.
        burst = partner.burst if limits["requests_per_minute"] is not None else None
        return WhatIf(
            partner.client_id,
            self.cleaned_data["files"],
            self.mix(),
            self.cleaned_data["servers"],
            burst=burst,
            default_limits=default_limits,
            **limits,
        )

    def summary(self) -> str:
        data = self.cleaned_data
        servers = f"{data['servers']} server{'s' if data['servers'] != 1 else ''}"
        return f"{data['files']:,} files of {self.mix().label} on {servers}"


class ApplyWhatIfForm(LimitsForm):
    """The partner's five limits with the what-if's three proposed: the other two stay as
    they are (hidden; the stale-edit check guards them). Ceilings apply for managers."""

    what_if = forms.CharField(widget=forms.HiddenInput, max_length=2000)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.fields:
            if name not in WHAT_IF_LIMITS and name in LIMIT_LABELS:
                self.fields[name].widget = forms.HiddenInput()
