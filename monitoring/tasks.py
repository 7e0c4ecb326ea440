"""django-q2 entry points: thin wrappers the scheduler calls."""

from monitoring import collectors, enrolment, rollups, servers


def roll_up_metrics() -> dict:
    return rollups.roll_up()


def purge_expired_metrics() -> dict:
    # Wrong enrolment secrets are kept only while they count toward a wait.
    return {**rollups.purge_expired(), "enrolment_failures": enrolment.purge_old_failures()}


def count_live_servers() -> int:
    """Notice servers that went silent even when no other report arrives to notice it."""
    return servers.count_live_servers()


def collect_metrics() -> dict:
    return collectors.collect_all()
