"""Writing the audit log, and the rules every audited change follows.

- record(): one entry, inside the transaction that makes the change, so both commit or neither.
- diff(): the before → after of the fields that changed, as JSON values.
- check_fresh(): a form opened before someone else saved is refused (StaleEdit), for any model
  that keeps a `revision`, `changed_at` and `changed_by`.
- Each app registers the labels of its verbs (register_actions), so the audit log can name them
  without core knowing any app.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone

from core.models import AuditEntry

SYSTEM_ACTOR_NAME = "system"

_action_labels: dict[str, str] = {}


def register_actions(choices: type[models.TextChoices]) -> None:
    """Make an app's verbs known by their labels (its AppConfig.ready calls this)."""
    _action_labels.update(dict(choices.choices))


def action_label(action: str) -> str:
    return _action_labels.get(action, action)


def action_choices() -> list[tuple[str, str]]:
    return sorted(_action_labels.items(), key=lambda choice: choice[1])


def actor_name(actor) -> str:
    return actor.get_username() if actor is not None else SYSTEM_ACTOR_NAME


def json_value(value):
    """A value as the audit log keeps it: JSON, with moments in ISO 8601."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [json_value(item) for item in value]
    if isinstance(value, (int, float, str, bool, type(None))):
        return value
    return str(value)


def diff(before: dict, after: dict) -> tuple[dict, dict]:
    """(before, after) of the fields whose value changed; both empty when nothing did."""
    changed = [name for name in after if json_value(before.get(name)) != json_value(after[name])]
    return (
        {name: json_value(before.get(name)) for name in changed if name in before},
        {name: json_value(after[name]) for name in changed},
    )


def record(
    actor, action: str, subject: str, before: dict, after: dict, reason: str, target: models.Model | None = None
) -> AuditEntry:
    return AuditEntry.objects.create(
        actor=actor,
        actor_name=actor_name(actor),
        action=action,
        subject=subject,
        target_type=ContentType.objects.get_for_model(target) if target is not None else None,
        target_id=target.pk if target is not None else None,
        before=before,
        after=after,
        reason=reason,
    )


def entries_about(model: type[models.Model]) -> models.QuerySet:
    """The entries that point at an object of this model."""
    return AuditEntry.objects.filter(target_type=ContentType.objects.get_for_model(model))


@dataclass(frozen=True)
class ChangeResult:
    """What a saved change left: its audit entry (None: nothing changed) and, for changes that
    are published to the upload servers, the config version they went out at."""

    audit_entry: AuditEntry | None
    version: int | None = None

    @property
    def changed(self) -> bool:
        return self.audit_entry is not None


NOTHING_CHANGED = ChangeResult(None, None)


class RefusedChange(Exception):
    """A change refused for a reason the person can act on; nothing was saved."""


class StaleEdit(RefusedChange):
    """The object changed after the editor opened the form; nothing was saved."""

    def __init__(self, changed_by: str, changed_at: datetime):
        self.changed_by = changed_by
        self.changed_at = changed_at
        when = timezone.localtime(changed_at).strftime("%Y-%m-%d %H:%M:%S %Z")
        super().__init__(
            f"Changed by {changed_by} at {when} since you opened it. "
            "Nothing was saved: reload to see the change, then edit again."
        )


def check_fresh(obj, expected_revision: int | None) -> None:
    """Refuse a change made from a form opened at an older revision of obj (under its row lock)."""
    if expected_revision is not None and obj.revision != expected_revision:
        raise StaleEdit(actor_name(obj.changed_by), obj.changed_at)


def mark_changed(obj, actor) -> None:
    """Bump obj's revision: forms opened before this save are stale from now on."""
    obj.revision += 1
    obj.changed_at = timezone.now()
    obj.changed_by = actor
