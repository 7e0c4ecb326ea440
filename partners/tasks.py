"""django-q2 entry points: thin wrappers around partners.changes."""

from partners import changes


def resume_due_pauses() -> int:
    return changes.resume_due_pauses()
