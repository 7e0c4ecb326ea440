"""django-q2 entry points: thin wrappers around partners.changes."""

from partners import changes


def resume_due_pauses() -> int:
    return changes.resume_due_pauses()


def run_expiring_overrides() -> dict:
    """Remind authors of overrides that end soon, then revert those whose end has come."""
    from partners import overrides

    return {"reminded": overrides.send_due_reminders(), "reverted": overrides.end_due_overrides()}


def run_load_coupled_limits() -> str:
    from partners import load_tasks

    tick = load_tasks.run()
    return "off" if tick is None else f"{tick.trend}: {len(tick.changed)} partner(s) changed"
