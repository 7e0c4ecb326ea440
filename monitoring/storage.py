"""Writing metric values into the minute level of the rollup table."""

from datetime import datetime

from monitoring.metrics import MINUTE_SECONDS, bucket_start
from monitoring.models import Rollup


def write_minute_value(metric: str, subject: str, moment: datetime, value: float) -> None:
    """Store one value per minute for (metric, subject); a second write to the same minute
    replaces the first, so a collector that runs twice stores nothing twice."""
    Rollup.objects.update_or_create(
        metric=metric, subject=subject, resolution_seconds=MINUTE_SECONDS,
        bucket_start=bucket_start(moment, MINUTE_SECONDS),
        defaults={"sample_count": 1, "total": value, "minimum": value, "maximum": value},
    )
