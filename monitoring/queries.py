"""The one reader of the metric tables (Rollup, ServerReport) for the rest of the app.

Named questions (fleet CPU per minute, a partner's shadow counts per hour, the busiest clients)
rather than querysets built elsewhere, so the metric names, the minute resolution and the
subjects' spelling (monitoring.metrics) stay here. Each function runs a fixed number of queries
whatever the data volume.

Chart series read the cheapest level that still draws the range well: the live range (15
minutes) reads raw reports (one point per report); longer ones read rollups at the finest
resolution that keeps a series at about 1,000 points or fewer.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Avg, Max, Min, OuterRef, Subquery, Sum
from django.utils import timezone

from monitoring import metrics
from monitoring.dbfunctions import EpochMilliseconds
from monitoring.models import Rollup, ServerReport, UploadServer

MINUTE = metrics.MINUTE_SECONDS

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
    def parse(cls, name: str | None, now: datetime | None = None) -> "Window":
        name = name or DEFAULT_RANGE
        if name not in RANGES_SECONDS:
            raise UnknownRange(f"range must be one of {', '.join(RANGES_SECONDS)}")
        end = now or timezone.now()
        seconds = RANGES_SECONDS[name]
        return cls(name, end - timedelta(seconds=seconds), end, resolution_for(seconds))

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def x_range_ms(self) -> list[int]:
        return [int(self.start.timestamp() * 1000), int(self.end.timestamp() * 1000)]


def resolution_for(range_seconds: int) -> int | None:
    if range_seconds <= RAW_MAX_RANGE_SECONDS:
        return None
    for resolution in metrics.RESOLUTIONS_SECONDS:
        if range_seconds / resolution <= MAX_POINTS_PER_SERIES * POINT_BUDGET_SLACK:
            return resolution
    return metrics.RESOLUTIONS_SECONDS[-1]


Series = dict[str, list]  # {"x": [epoch ms, ...], "y": [...]}


def _rollups(metric: str, window: Window):
    return (
        Rollup.objects.filter(
            metric=metric,
            resolution_seconds=window.resolution_seconds or metrics.MINUTE_SECONDS,
            bucket_start__gte=window.start,
            bucket_start__lte=window.end,
        )
        .annotate(at_ms=EpochMilliseconds("bucket_start"))
        .order_by("bucket_start")
    )


def rollup_series(
    metric: str, window: Window, subjects: list[str] | None = None, subject_prefix: str | None = None
) -> dict[str, Series]:
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
    for at_ms, count, total, low, high in (
        _rollups(metric, window)
        .filter(subject=subject)
        .values_list("at_ms", "sample_count", "total", "minimum", "maximum")
    ):
        band["x"].append(at_ms)
        band["mean"].append(total / count)
        band["low"].append(low)
        band["high"].append(high)
    return band


def raw_cpu_minutes(window: Window) -> dict[str, list]:
    """Fleet CPU per minute from the raw reports, as the alert sees it, and the raw range. One query.

    mean: the fleet's 1-minute average exactly as the minute rollup computes it (the mean of
    each server's mean over the minute), which is what the "Fleet CPU high" rule compares;
    low and high: the coolest and the hottest raw report in that minute (the 5 s swings).
    Read raw so that the live range is current even while the rollups lag.
    """
    minutes: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    rows = (
        ServerReport.objects.filter(received_at__gte=window.start, received_at__lte=window.end)
        .annotate(at_ms=EpochMilliseconds("received_at"))
        .values_list("server_id", "at_ms", "cpu_percent")
    )
    for server_id, at_ms, cpu in rows:
        minutes[at_ms - at_ms % (MINUTE * 1000)][server_id].append(cpu)
    band: dict[str, list] = {"x": [], "mean": [], "low": [], "high": []}
    for minute_ms in sorted(minutes):
        per_server = minutes[minute_ms].values()
        means = [sum(samples) / len(samples) for samples in per_server]
        band["x"].append(minute_ms)
        band["mean"].append(sum(means) / len(means))
        band["low"].append(min(min(samples) for samples in per_server))
        band["high"].append(max(max(samples) for samples in per_server))
    return band


def rounded(series: Series) -> Series:
    return {"x": series["x"], "y": [round(value, 3) for value in series["y"]]}


# ---- minute values: what the policies, alerts and pages ask -----------------------------


def _minutes(metric: str):
    return Rollup.objects.filter(metric=metric, resolution_seconds=MINUTE)


def cpu_minutes(subject: str, since: datetime, until: datetime) -> dict[datetime, float]:
    """{minute start: CPU %} of one subject ("fleet", an Auto Scaling group) for since <= minute < until."""
    rows = _minutes(metrics.CPU_PERCENT).filter(subject=subject, bucket_start__gte=since, bucket_start__lt=until)
    return {
        minute: total / count
        for minute, total, count in rows.values_list("bucket_start", "total", "sample_count")
        if count
    }


def fleet_cpu_minutes(since: datetime, until: datetime) -> dict[datetime, float]:
    """The fleet's average CPU % per minute, from the servers' status reports."""
    return cpu_minutes(metrics.FLEET, since, until)


def peak_fleet_cpu_percent(since: datetime, until: datetime) -> float | None:
    """The hottest server's CPU in the busiest minute, since <= minute < until."""
    return (
        _minutes(metrics.CPU_PERCENT)
        .filter(subject=metrics.FLEET, bucket_start__gte=since, bucket_start__lt=until)
        .aggregate(peak=Max("maximum"))["peak"]
    )


def peak_summed_server_cpu_percent(server_name_prefix: str, since: datetime, until: datetime) -> float | None:
    """The busiest minute of the servers whose names start with the prefix: their CPU % added up
    (200 = two servers' worth of cores), for since <= minute <= until."""
    per_minute = (
        _minutes(metrics.CPU_PERCENT)
        .filter(
            subject__startswith=metrics.server_subject(server_name_prefix),
            bucket_start__gte=since,
            bucket_start__lte=until,
        )
        .values("bucket_start")
        .annotate(cpu_percent=Sum("total"))
    )
    return per_minute.aggregate(peak=Max("cpu_percent"))["peak"]


def latest_instance_cpu(instance_ids: list[str], since: datetime) -> dict[str, float]:
    """{instance id: CPU % of its latest minute since `since`} (CloudWatch, collected per minute)."""
    subjects = {metrics.instance_subject(instance_id): instance_id for instance_id in instance_ids}
    rows = (
        _minutes(metrics.CPU_PERCENT)
        .filter(subject__in=list(subjects), bucket_start__gte=since)
        .order_by("bucket_start")
        .values_list("subject", "total", "sample_count")
    )
    return {subjects[subject]: total / count for subject, total, count in rows}


AGGREGATES = {"avg": Avg, "max": Max, "min": Min, "sum": Sum}


def minute_aggregates(
    metric: str, subject: str, after: datetime, through: datetime, aggregation: str
) -> dict[str, float]:
    """{subject: the minute values aggregated (avg, max, min, sum)} for after < minute <= through.

    subject: one series ("fleet", "queue:Video"), or every series of a kind ("server:*")."""
    rows = _minutes(metric).filter(bucket_start__gt=after, bucket_start__lte=through)
    rows = rows.filter(subject__startswith=subject[:-1]) if subject.endswith("*") else rows.filter(subject=subject)
    values = rows.values("subject").annotate(value=AGGREGATES[aggregation]("total")).values_list("subject", "value")
    return {name: value for name, value in values if value is not None}


def busiest_clients(since: datetime, until: datetime, limit: int) -> dict[str, float]:
    """{client id: average uploads in progress}, busiest first, for since <= minute <= until."""
    rows = (
        _minutes(metrics.UPLOADS_IN_PROGRESS)
        .filter(subject__startswith=metrics.client_subject(""), bucket_start__gte=since, bucket_start__lte=until)
        .values("subject")
        .annotate(load=Avg("total"))
        .order_by("-load")[:limit]
    )
    return {row["subject"].removeprefix(metrics.client_subject("")): row["load"] for row in rows}


SHADOW_HOURS_SHOWN = 24
SHADOW_OUTCOMES = (metrics.ADMITTED, metrics.THROTTLED, metrics.WOULD_HAVE_THROTTLED)


def shadow_outcomes_by_hour(client_id: str, now: datetime | None = None) -> list[dict]:
    """What a client's shadow limits would have done, per hour over the last day, newest hour first:
    {"hour", "admitted", "throttled", "would_have_throttled"}; hours with no reports are left out.

    Read from the minute rollups, so the hour still filling is shown too: at most
    24 × 60 minutes × 3 metrics rows."""
    now = now or timezone.now()
    first_hour = metrics.bucket_start(now, 3600) - timedelta(hours=SHADOW_HOURS_SHOWN - 1)
    rows = Rollup.objects.filter(
        resolution_seconds=MINUTE,
        subject=metrics.client_subject(client_id),
        metric__in=SHADOW_OUTCOMES,
        bucket_start__gte=first_hour,
        bucket_start__lte=now,
    ).values_list("bucket_start", "metric", "total")
    hours: dict[datetime, dict] = {}
    for minute, metric, total in rows:
        hour = metrics.bucket_start(minute, 3600)
        counts = hours.setdefault(hour, {"hour": hour, **dict.fromkeys(SHADOW_OUTCOMES, 0)})
        counts[metric] += round(total)
    return [hours[hour] for hour in sorted(hours, reverse=True)]


def latest_client_figures(servers: Iterable[UploadServer]) -> dict[str, tuple[int, int]]:
    """{client id: (uploads in progress, bytes in flight)} added up over each server's latest report.

    One query whatever the fleet's size: the overview asks for it at every poll."""
    newest = ServerReport.objects.filter(server=OuterRef("server")).order_by("-received_at", "-sequence")
    reports = ServerReport.objects.filter(server__in=servers, pk=Subquery(newest.values("pk")[:1]))
    per_client: dict[str, list[int]] = {}
    for clients in reports.values_list("clients", flat=True):
        for client_id, figures in (clients or {}).items():
            totals = per_client.setdefault(client_id, [0, 0])
            totals[0] += int(figures.get("uploads_in_progress", 0))
            totals[1] += int(figures.get("bytes_in_flight", 0))
    return {client_id: (uploads, bytes_in_flight) for client_id, (uploads, bytes_in_flight) in per_client.items()}
