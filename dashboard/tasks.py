"""django-q2 entry points: thin wrappers the scheduler calls."""

from dashboard import weekly


def send_weekly_summary() -> bool:
    return weekly.send_weekly_summary()
