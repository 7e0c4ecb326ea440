"""The metrics we store, and how subjects are spelled. One vocabulary for ingest and charts."""

from datetime import datetime

CPU_PERCENT = "cpu_percent"
UPLOADS_IN_PROGRESS = "uploads_in_progress"
BYTES_IN_FLIGHT = "bytes_in_flight"
ADMITTED = "admitted"
THROTTLED = "throttled"
TIMED_OUT = "timed_out"
COMPLETED = "completed"
FAILED = "failed"
# Uploads the partner's shadow limits would have throttled (counted, never enforced).
WOULD_HAVE_THROTTLED = "would_have_throttled"
QUEUE_VISIBLE = "queue_visible"
QUEUE_IN_FLIGHT = "queue_in_flight"

GAUGES = (UPLOADS_IN_PROGRESS, BYTES_IN_FLIGHT)
# Outcome counts: a report carries the count since the previous report; stored per minute.
COUNTS = (ADMITTED, THROTTLED, TIMED_OUT, COMPLETED, FAILED, WOULD_HAVE_THROTTLED)

FLEET = "fleet"
MINUTE_SECONDS = 60
RESOLUTIONS_SECONDS = (60, 600, 3600)


def server_subject(name: str) -> str:
    return f"server:{name}"


def client_subject(client_id: str) -> str:
    return f"client:{client_id}"


def queue_subject(name: str) -> str:
    return f"queue:{name}"


def autoscaling_group_subject(group_name: str) -> str:
    return f"asg:{group_name}"


def instance_subject(instance_id: str) -> str:
    return f"instance:{instance_id}"


def bucket_start(moment: datetime, resolution_seconds: int) -> datetime:
    """The start of the bucket that holds `moment` (buckets are aligned to the epoch, UTC)."""
    epoch_seconds = int(moment.timestamp())
    return datetime.fromtimestamp(epoch_seconds - epoch_seconds % resolution_seconds, tz=moment.tzinfo)
