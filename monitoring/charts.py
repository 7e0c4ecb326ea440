"""Series for the charts, read from the cheapest level that still draws the range well.

The live range (15 minutes) reads raw reports (one point per report); longer ones read rollups at
the finest resolution that keeps a series at about 1,000 points or fewer. Each function
runs a fixed number of queries whatever the data volume.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from monitoring import metrics
from monitoring.dbfunctions import EpochMilliseconds
from monitoring.models import SILENT_AFTER_INTERVALS, Rollup, ServerReport, UploadServer

RANGES_SECONDS = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
DEFAULT_RANGE = "15m"
# Raw reports (one point per report and server) only for the live range: 50 servers every
# 5 s is 9,000 points in 15 minutes already.
RAW_MAX_RANGE_SECONDS = 900
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

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def x_range_ms(self) -> list[int]:
        return [int(self.start.timestamp() * 1000), int(self.end.timestamp() * 1000)]


def resolution_for(range_seconds: int, raw_allowed: bool = True) -> int | None:
    if raw_allowed and range_seconds <= RAW_MAX_RANGE_SECONDS:
        return None
    for resolution in metrics.RESOLUTIONS_SECONDS:
        if range_seconds / resolution <= MAX_POINTS_PER_SERIES * POINT_BUDGET_SLACK:
            return resolution
    return metrics.RESOLUTIONS_SECONDS[-1]


Series = dict[str, list]  # {"x": [epoch ms, ...], "y": [...]}


def _rollups(metric: str, window: Window):
    return Rollup.objects.filter(
        metric=metric, resolution_seconds=window.resolution_seconds or metrics.MINUTE_SECONDS,
        bucket_start__gte=window.start, bucket_start__lte=window.end,
    ).annotate(at_ms=EpochMilliseconds("bucket_start")).order_by("bucket_start")


def rollup_series(metric: str, window: Window, subjects: list[str] | None = None,
                  subject_prefix: str | None = None) -> dict[str, Series]:
    """{subject: {"x", "y"}}: the mean per minute of one metric over the window. One query."""
    rows = _rollups(metric, window)
    if subjects is not None:
        rows = rows.filter(subject__in=subjects)
    elif subject_prefix is not None:
        rows = rows.filter(subject__startswith=subject_prefix)
    series: dict[str, Series] = defaultdict(lambda: {"x": [], "y": []})
    for subject, at_ms, count, total in rows.values_list("subject", "at_ms", "sample_count", "total"):
        points = series[subject]
        points["x"].append(at_ms)
        points["y"].append(total / count)
    return dict(series)


def rollup_band(metric: str, subject: str, window: Window) -> dict[str, list]:
    """x with the mean, lowest and highest value of one series. One query."""
    band: dict[str, list] = {"x": [], "mean": [], "low": [], "high": []}
    for at_ms, count, total, low, high in _rollups(metric, window).filter(subject=subject).values_list(
            "at_ms", "sample_count", "total", "minimum", "maximum"):
        band["x"].append(at_ms)
        band["mean"].append(total / count)
        band["low"].append(low)
        band["high"].append(high)
    return band


def raw_cpu_series(window: Window) -> tuple[dict[str, Series], Series]:
    """Per-server CPU from raw reports, and the fleet average per report interval. Two queries.

    The fleet average at the end of each interval is the mean of every server's latest CPU,
    as long as that report is younger than three of its intervals (the live rule).
    """
    names = dict(UploadServer.objects.values_list("id", "name"))
    per_server: dict[str, Series] = defaultdict(lambda: {"x": [], "y": []})
    # low and high: the coolest and the hottest live server, for the band of a large fleet.
    fleet: Series = {"x": [], "y": [], "low": [], "high": []}
    latest: dict[int, tuple[int, float, int]] = {}
    current_bucket_ms = None
    rows = ServerReport.objects.filter(received_at__gte=window.start, received_at__lte=window.end).annotate(
        at_ms=EpochMilliseconds("received_at")).order_by("received_at")
    for server_id, at_ms, cpu, interval in rows.values_list("server_id", "at_ms", "cpu_percent", "interval_seconds"):
        interval_ms = max(interval, 1) * 1000
        bucket_ms = at_ms - at_ms % interval_ms
        if current_bucket_ms is not None and bucket_ms != current_bucket_ms:
            _append_fleet_point(fleet, current_bucket_ms, latest)
        current_bucket_ms = bucket_ms
        latest[server_id] = (at_ms, cpu, interval_ms)
        points = per_server[names.get(server_id, str(server_id))]
        points["x"].append(at_ms)
        points["y"].append(cpu)
    if current_bucket_ms is not None:
        _append_fleet_point(fleet, current_bucket_ms, latest)
    return dict(per_server), fleet


def _append_fleet_point(fleet: Series, bucket_ms: int, latest: dict) -> None:
    live = [cpu for seen_ms, cpu, interval_ms in latest.values()
            if bucket_ms - seen_ms <= SILENT_AFTER_INTERVALS * interval_ms]
    if live:
        fleet["x"].append(bucket_ms)
        fleet["y"].append(sum(live) / len(live))
        fleet["low"].append(min(live))
        fleet["high"].append(max(live))


def rounded(series: Series) -> Series:
    return {"x": series["x"], "y": [round(value, 3) for value in series["y"]]}
