"""What every app's forms share: the reason for the audit log, byte sizes typed in units, and
saving a form's change (a refusal or a failed commit becomes an error on the form)."""

import logging

from django import forms
from django.contrib import messages
from django.db import DatabaseError, DataError

from core.audit import ChangeResult, RefusedChange
from core.bounds import BIGINT_MAX, INT32_MAX, too_large_message
from core.units import ByteSizeError, format_bytes_exact, parse_bytes

logger = logging.getLogger(__name__)

REASON_REQUIRED = "Say why: the reason goes into the audit log."
MIN_ONE_MESSAGE = "Must be at least 1; leave it empty for no limit."


class ReasonField(forms.CharField):
    def __init__(self, required: bool = True, **kwargs):
        kwargs.setdefault("widget", forms.TextInput(attrs={"placeholder": "why (kept in the audit log)"}))
        kwargs.setdefault("max_length", 500)
        kwargs.setdefault("error_messages", {"required": REASON_REQUIRED})
        super().__init__(required=required, **kwargs)

    def clean(self, value):
        value = super().clean(value)
        return value.strip() if value else value


class ByteSizeField(forms.Field):
    """A byte count typed and shown in human units ("5 GB", "2 GiB"), at most what a `bigint`
    column holds."""

    default_error_messages = {
        "min_value": MIN_ONE_MESSAGE,
        "max_value": f"At most {format_bytes_exact(BIGINT_MAX)}: the largest size the column holds.",
    }

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", forms.TextInput(attrs={"placeholder": "no limit", "inputmode": "text"}))
        super().__init__(*args, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, int):
            return format_bytes_exact(value)
        return value

    def to_python(self, value):
        if value in self.empty_values or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, int):
            return value
        try:
            return parse_bytes(str(value))
        except ByteSizeError as error:
            raise forms.ValidationError(str(error), code="invalid") from error

    def validate(self, value):
        super().validate(value)
        if value is not None and value < 1:
            raise forms.ValidationError(self.error_messages["min_value"], code="min_value")
        if value is not None and value > BIGINT_MAX:
            raise forms.ValidationError(self.error_messages["max_value"], code="max_value")


class Int32Field(forms.IntegerField):
    """A whole number that lands in an `integer` column: at most 2^31 - 1, said in the error."""

    def __init__(self, *args, **kwargs):
        kwargs["error_messages"] = {"max_value": too_large_message(INT32_MAX), **kwargs.get("error_messages", {})}
        super().__init__(*args, max_value=INT32_MAX, **kwargs)


class RevisionField(Int32Field):
    """The revision of the object the form was opened at (hidden): a save from a form opened
    before someone else saved is refused, and so is one that leaves the revision out."""

    def __init__(self, **kwargs):
        kwargs.setdefault("widget", forms.HiddenInput)
        kwargs.setdefault(
            "error_messages",
            {"required": "Missing: the form does not say which version of the settings it edits. Nothing was saved."},
        )
        super().__init__(required=True, **kwargs)


def save_change(form: forms.Form, change, *args, **kwargs):
    """Run a change; on a refusal or a failed commit, say so on the form and return None."""
    try:
        return change(*args, **kwargs)
    except RefusedChange as refused:
        form.add_error(None, str(refused))
    except DataError:
        # A value the form's bounds let through but the database refuses: input to correct,
        # not a failure to try again (fields are bounded by their columns, so this is a gap).
        logger.exception("A change was refused by the database as out of range")
        form.add_error(None, "A value does not fit the column it is stored in. Nothing was changed.")
    except DatabaseError as error:
        logger.exception("A change failed to commit")
        form.database_failed = True
        form.add_error(
            None,
            f"The change could not be saved and published ({error.__class__.__name__}). "
            "Nothing was changed; try again in a moment.",
        )
    return None


def refusal_status(form: forms.Form) -> int:
    """400 for input to correct; 503 when the database failed (try again)."""
    return 503 if getattr(form, "database_failed", False) else 400


def say_saved(request, result: ChangeResult, what: str) -> None:
    if result.changed and result.version is not None:
        messages.success(request, f"{what}; published as config version {result.version}.")
    elif result.changed:
        messages.success(request, f"{what}.")
    else:
        messages.info(request, "Nothing changed.")
