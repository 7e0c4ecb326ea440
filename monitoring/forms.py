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
