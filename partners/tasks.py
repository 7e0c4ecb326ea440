"""django-q2 entry points: thin wrappers around partners.changes."""

from partners import changes


def resume_due_pauses() -> int:
    return changes.resume_due_pauses()


def run_load_coupled_limits() -> str:
    from partners import load_tasks

    tick = load_tasks.run()
    return "off" if tick is None else f"{tick.trend}: {len(tick.changed)} partner(s) changed"
