"""django-q2 entry points: thin wrappers the scheduler calls."""

from alerting import evaluation


def evaluate_alerts() -> dict:
    """Evaluate every alert rule, queue emails, deliver those due (retries included)."""
    return evaluation.run()
