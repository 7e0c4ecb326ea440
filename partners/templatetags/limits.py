import re
from datetime import UTC, datetime

from django import template

from core.units import format_bytes_exact, format_bytes_short
from partners.forms import LIMIT_LABELS
from partners.models import BYTE_LIMIT_FIELDS

register = template.Library()


@register.filter
def limit_value(obj, name: str):
    """The value of limit `name` on obj (a partner, the fleet settings or a table row)."""
    return getattr(obj, name, None)


@register.filter
def override_of(covered: dict, name: str):
    """The active override covering limit `name`, from overrides.covered_fields()."""
    return (covered or {}).get(name)


@register.filter
def show_limit(value, name: str) -> str:
    if value is None:
        return "no limit"
    if name in BYTE_LIMIT_FIELDS:
        return format_bytes_short(value)
    return f"{value:,}"


@register.filter
def show_limit_exact(value, name: str) -> str:
    if value is None:
        return "no limit"
    return format_bytes_exact(value) if name in BYTE_LIMIT_FIELDS else f"{value:,}"


@register.filter
def limit_label(name: str) -> str:
    if name.startswith("ceiling_"):
        label = limit_label(name.removeprefix("ceiling_"))
        return f"Ceiling: {label[0].lower()}{label[1:]}"
    if name.startswith("shadow_"):
        label = limit_label(name.removeprefix("shadow_"))
        return f"Shadow: {label[0].lower()}{label[1:]}"
    return LIMIT_LABELS.get(name, name.replace("_", " "))


@register.filter
def audit_value(value, name: str) -> str:
    if name.startswith("shadow_") and name.removeprefix("shadow_") in LIMIT_LABELS:
        # A cleared shadow value means "none", not "no limit".
        return "—" if value is None else show_limit_exact(value, name.removeprefix("shadow_"))
    if name.removeprefix("ceiling_") in LIMIT_LABELS:
        return show_limit_exact(value, name.removeprefix("ceiling_"))
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "—"
    if isinstance(value, str) and _ISO_MOMENT.match(value):
        return _readable_moment(value)
    return str(value)


# Moments are stored in the audit log as ISO 8601 (exact, sortable); people read minutes in UTC.
_ISO_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def _readable_moment(value: str) -> str:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M} UTC"


@register.filter
def effective_limit(partner, name: str):
    """The limit in force for load-coupled limits (the configured one when not lowered)."""
    return partner.effective_value(name)


@register.filter
def decimal_bytes(size_bytes) -> str:
    """Bytes in decimal units as partner pages show them ("105 GB"): Django's filesizeformat
    is binary and would make 100 GB + 5 GB read "97.8 GB"."""
    return format_bytes_short(None if size_bytes is None else int(size_bytes))
