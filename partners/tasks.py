"""django-q2 entry points: thin wrappers around partners.changes and partners.overrides."""

from partners import changes, overrides


def resume_due_pauses() -> int:
    return changes.resume_due_pauses()


def run_expiring_overrides() -> dict:
    """Revert the overrides whose end has come, then remind authors of those that end soon.

    Reverts first: an SMTP server that hangs (or a worker killed while sending) never holds one
    back. Each override row is the job's record: a revert is one transaction, so a killed worker
    leaves it due and the next minute's run reverts it, once."""
    return {"reverted": overrides.end_due_overrides(), "reminded": overrides.send_due_reminders()}
