"""django-q2 entry points: thin wrappers around partners.changes and partners.overrides."""

from partners import changes, overrides


def resume_due_pauses() -> int:
    return changes.resume_due_pauses()


def run_expiring_overrides() -> dict:
    """Remind authors of overrides that end soon, then revert those whose end has come."""
    return {"reminded": overrides.send_due_reminders(), "reverted": overrides.end_due_overrides()}
