"""What a partner's shadow limits would have done: per hour over the last day.

Read from the per-minute rollups (kept for days), so the hour still filling is shown too.
One query whatever the volume: at most 24 × 60 minutes × 3 metrics rows.
"""

from datetime import datetime, timedelta

from django.utils import timezone

from monitoring import metrics
from monitoring.models import Rollup

HOURS_SHOWN = 24
OUTCOMES = (metrics.ADMITTED, metrics.THROTTLED, metrics.WOULD_HAVE_THROTTLED)


def last_day_by_hour(client_id: str, now: datetime | None = None) -> list[dict]:
    """Newest hour first: {"hour", "admitted", "throttled", "would_have_throttled"}; hours with
    no reports are left out."""
    now = now or timezone.now()
    first_hour = metrics.bucket_start(now, 3600) - timedelta(hours=HOURS_SHOWN - 1)
    rows = Rollup.objects.filter(
        resolution_seconds=60, subject=metrics.client_subject(client_id), metric__in=OUTCOMES,
        bucket_start__gte=first_hour, bucket_start__lte=now,
    ).values_list("bucket_start", "metric", "total")
    hours: dict[datetime, dict] = {}
    for minute, metric, total in rows:
        hour = metrics.bucket_start(minute, 3600)
        counts = hours.setdefault(hour, {"hour": hour, **dict.fromkeys(OUTCOMES, 0)})
        counts[metric] += round(total)
    return [hours[hour] for hour in sorted(hours, reverse=True)]
