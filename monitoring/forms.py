from django import forms

from core.forms import ReasonField
from monitoring.models import UploadServer, server_name_validator


class RegisterServerForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        validators=[server_name_validator],
        help_text="The server id the upload server puts in its reports, e.g. upload-3.",
    )
    reason = ReasonField()

    def clean_name(self):
        name = self.cleaned_data["name"]
        if UploadServer.objects.filter(name=name).exists():
            raise forms.ValidationError(f"A server named {name} is registered already.")
        return name


class ServerActionForm(forms.Form):
    reason = ReasonField()


class EnrolmentSecretForm(forms.Form):
    """Create or replace the fleet enrolment secret."""

    prefix = "secret"  # the register form on the same page has a reason too

    PREVIOUS_VALID_CHOICES = [
        (0, "stops at once (it leaked)"),
        (3600, "stays valid 1 hour"),
        (86400, "stays valid 24 hours (time to update launch templates)"),
    ]
    previous_valid_seconds = forms.TypedChoiceField(
        label="The replaced secret",
        choices=PREVIOUS_VALID_CHOICES,
        coerce=int,
        required=False,
        empty_value=0,
        initial=0,
        help_text="Hosts enrolling with the replaced secret: refused at once, or still enrolled for a while.",
    )
    reason = ReasonField()


class RotateTokenForm(ServerActionForm):
    # The token the form was opened with: a second submit of the same form replaces nothing.
    token_prefix = forms.CharField(widget=forms.HiddenInput)
