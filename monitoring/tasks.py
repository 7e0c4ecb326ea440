"""django-q2 entry points: thin wrappers the scheduler calls."""

from monitoring import collectors, rollups, servers


def roll_up_metrics() -> dict:
    return rollups.roll_up()


def purge_expired_metrics() -> dict:
    return rollups.purge_expired()


def count_live_servers() -> int:
    """Notice servers that went silent even when no other report arrives to notice it."""
    return servers.count_live_servers()


def collect_metrics() -> dict:
    return collectors.collect_all()
