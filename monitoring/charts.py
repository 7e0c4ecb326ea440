"""Series for the charts, read from the cheapest level that still draws the range well.

Ranges up to an hour read raw reports (one point per report); longer ones read rollups at
the finest resolution that keeps a series at about 1,000 points or fewer. Each function
runs a fixed number of queries whatever the data volume.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from monitoring import metrics
from monitoring.models import SILENT_AFTER_INTERVALS, Rollup, ServerReport, UploadServer

RANGES_SECONDS = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
DEFAULT_RANGE = "1h"
RAW_MAX_RANGE_SECONDS = 3600
MAX_POINTS_PER_SERIES = 1000
# 7 days at ten minutes is 1,008 points: "about 1,000" is the budget, not a hard wall.
POINT_BUDGET_SLACK = 1.01


class UnknownRange(ValueError):
    pass


@dataclass(frozen=True)
class Window:
    name: str
    start: datetime
    end: datetime
    resolution_seconds: int | None  # None: raw reports

    @classmethod
    def parse(cls, name: str | None, now: datetime | None = None, raw_allowed: bool = True) -> "Window":
        name = name or DEFAULT_RANGE
        if name not in RANGES_SECONDS:
            raise UnknownRange(f"range must be one of {', '.join(RANGES_SECONDS)}")
        end = now or timezone.now()
        seconds = RANGES_SECONDS[name]
        return cls(name, end - timedelta(seconds=seconds), end, resolution_for(seconds, raw_allowed))


def resolution_for(range_seconds: int, raw_allowed: bool = True) -> int | None:
    if raw_allowed and range_seconds <= RAW_MAX_RANGE_SECONDS:
        return None
    for resolution in metrics.RESOLUTIONS_SECONDS:
        if range_seconds / resolution <= MAX_POINTS_PER_SERIES * POINT_BUDGET_SLACK:
            return resolution
    return metrics.RESOLUTIONS_SECONDS[-1]


Series = dict[str, list]  # {"x": [...], "y": [...]}


def rollup_series(metric: str, window: Window, subjects: list[str] | None = None,
                  subject_prefix: str | None = None, field: str = "mean") -> dict[str, Series]:
    """{subject: {"x", "y"}} for one metric over the window, from the rollup level. One query."""
    rows = Rollup.objects.filter(
        metric=metric, resolution_seconds=window.resolution_seconds or metrics.MINUTE_SECONDS,
        bucket_start__gte=window.start, bucket_start__lte=window.end,
    )
    if subjects is not None:
        rows = rows.filter(subject__in=subjects)
    elif subject_prefix is not None:
        rows = rows.filter(subject__startswith=subject_prefix)
    series: dict[str, Series] = defaultdict(lambda: {"x": [], "y": []})
    for subject, bucket, count, total, maximum in rows.order_by("bucket_start").values_list(
            "subject", "bucket_start", "sample_count", "total", "maximum"):
        series[subject]["x"].append(bucket)
        series[subject]["y"].append(maximum if field == "max" else total / count)
    return dict(series)


def raw_cpu_series(window: Window) -> tuple[dict[str, Series], Series]:
    """Per-server CPU from raw reports, and the fleet average per report interval. Two queries.

    The fleet average at the end of each interval is the mean of every server's latest CPU,
    as long as that report is younger than three of its intervals (the live rule).
    """
    names = dict(UploadServer.objects.values_list("id", "name"))
    per_server: dict[str, Series] = defaultdict(lambda: {"x": [], "y": []})
    fleet: Series = {"x": [], "y": []}
    latest: dict[int, tuple[datetime, float, int]] = {}
    current_bucket = None
    rows = ServerReport.objects.filter(received_at__gte=window.start, received_at__lte=window.end)
    for server_id, received_at, cpu, interval in rows.order_by("received_at").values_list(
            "server_id", "received_at", "cpu_percent", "interval_seconds"):
        bucket = metrics.bucket_start(received_at, max(interval, 1))
        if current_bucket is not None and bucket != current_bucket:
            _append_fleet_point(fleet, current_bucket, latest)
        current_bucket = bucket
        latest[server_id] = (received_at, cpu, interval)
        name = names.get(server_id, str(server_id))
        per_server[name]["x"].append(received_at)
        per_server[name]["y"].append(cpu)
    if current_bucket is not None:
        _append_fleet_point(fleet, current_bucket, latest)
    return dict(per_server), fleet


def _append_fleet_point(fleet: Series, bucket: datetime, latest: dict) -> None:
    live = [cpu for seen_at, cpu, interval in latest.values()
            if (bucket - seen_at).total_seconds() <= SILENT_AFTER_INTERVALS * interval]
    if live:
        fleet["x"].append(bucket)
        fleet["y"].append(sum(live) / len(live))


def iso(series: Series) -> Series:
    return {"x": [moment.isoformat() for moment in series["x"]], "y": [round(v, 3) for v in series["y"]]}
