"""django-q2 entry points: thin wrappers the scheduler calls."""

from monitoring import rollups
from monitoring.reports import sync_live_server_count


def roll_up_metrics() -> dict:
    return rollups.roll_up()


def purge_expired_metrics() -> dict:
    return rollups.purge_expired()


def sync_live_servers() -> bool:
    """Notice servers that went silent even when no other report arrives to notice it."""
    return sync_live_server_count()


def collect_metrics() -> dict:
    from monitoring import collectors

    return collectors.collect_all()


def evaluate_alerts() -> dict:
    """Evaluate every alert rule, queue emails, deliver those due (retries included)."""
    from monitoring.alerting import evaluation

    return evaluation.run()
