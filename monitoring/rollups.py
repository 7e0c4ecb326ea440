"""Rolling raw reports into per-minute rows, minutes into ten minutes and hours; retention.

Every step is idempotent (upserts keyed by series and bucket), so a job that runs twice, or
re-rolls the last buckets to pick up late data, stores nothing twice.
"""

from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Min, Sum
from django.utils import timezone

from monitoring import metrics
from monitoring.models import Rollup, RollupWatermark, ServerBoot, ServerReport

# A minute is rolled once it has ended and in-flight requests have committed.
MINUTE_GRACE_SECONDS = 5
# Coarser buckets are re-rolled this many times over, so a late CloudWatch datapoint (they
# arrive minutes late) still reaches them.
REROLL_BUCKETS = 2
MAX_BUCKETS_PER_RUN = 24 * 60


def roll_up(now: datetime | None = None) -> dict[int, int]:
    """Roll every level up to `now`; returns buckets rolled per resolution."""
    now = now or timezone.now()
    return {
        60: roll_up_minutes(now),
        600: _roll_level(600, now, lambda start: _coarser_rows(start, 600, 60)),
        3600: _roll_level(3600, now, lambda start: _coarser_rows(start, 3600, 600)),
    }


def roll_up_minutes(now: datetime) -> int:
    """Roll the raw reports into minutes up to the last complete minute; returns minutes rolled.
    The alert evaluation calls it before reading minutes, so a rollup job that lags behind
    (the worker runs at low priority and lags exactly when the fleet is busy) can't hide them."""
    return _roll_level(60, now, _minute_rows)


def last_complete_minute(now: datetime) -> datetime:
    """The start of the newest minute that has ended and been given its grace for late commits."""
    return metrics.bucket_start(now - timedelta(seconds=MINUTE_GRACE_SECONDS), 60) - timedelta(minutes=1)


def minutes_rolled_until(now: datetime) -> datetime | None:
    """The end of the newest minute rolled from the raw reports; None before the first roll."""
    watermark = RollupWatermark.objects.filter(resolution_seconds=60).first()
    return watermark.rolled_until if watermark else None


def _roll_level(resolution_seconds: int, now: datetime, rows_for_bucket) -> int:
    step = timedelta(seconds=resolution_seconds)
    # The bucket still filling; every bucket before it is complete.
    current_bucket = metrics.bucket_start(now - timedelta(seconds=MINUTE_GRACE_SECONDS), resolution_seconds)
    start = _first_bucket(resolution_seconds)
    if start is None:
        return 0
    bucket = max(start, current_bucket - step * MAX_BUCKETS_PER_RUN)
    rolled = 0
    while bucket < current_bucket:
        with transaction.atomic():
            _upsert(rows_for_bucket(bucket))
            RollupWatermark.objects.update_or_create(
                resolution_seconds=resolution_seconds, defaults={"rolled_until": bucket + step}
            )
        bucket += step
        rolled += 1
    return rolled


def _first_bucket(resolution_seconds: int) -> datetime | None:
    watermark = RollupWatermark.objects.filter(resolution_seconds=resolution_seconds).first()
    if watermark:
        reroll = 1 if resolution_seconds == 60 else REROLL_BUCKETS
        return watermark.rolled_until - timedelta(seconds=resolution_seconds * reroll)
    earliest = _earliest_data(resolution_seconds)
    return metrics.bucket_start(earliest, resolution_seconds) if earliest else None


def _earliest_data(resolution_seconds: int) -> datetime | None:
    if resolution_seconds == 60:
        first_report = ServerReport.objects.order_by("received_at").values_list("received_at", flat=True).first()
        first_minute = Rollup.objects.filter(resolution_seconds=60).aggregate(m=Min("bucket_start"))["m"]
        return min(filter(None, [first_report, first_minute]), default=None)
    finer = {600: 60, 3600: 600}[resolution_seconds]
    return Rollup.objects.filter(resolution_seconds=finer).aggregate(m=Min("bucket_start"))["m"]


def _upsert(rows: list[Rollup]) -> None:
    if rows:
        Rollup.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["metric", "subject", "resolution_seconds", "bucket_start"],
            update_fields=["sample_count", "total", "minimum", "maximum"],
        )


def _minute_rows(minute: datetime) -> list[Rollup]:
    reports = list(
        ServerReport.objects.filter(
            received_at__gte=minute,
            received_at__lt=minute + timedelta(minutes=1),
        ).values_list(
            "server__name",
            "cpu_percent",
            "interval_seconds",
            "clients",
            "uploads_in_progress",
            "bytes_in_flight",
            *metrics.COUNTS,
        )
    )
    if not reports:
        return []
    values: dict[tuple[str, str], float] = defaultdict(float)
    cpu_by_server: dict[str, list[float]] = defaultdict(list)
    for name, cpu, interval, clients, uploads, bytes_, *counts in reports:
        cpu_by_server[name].append(cpu)
        # A gauge reported every `interval` seconds, weighted by the time it covers, sums
        # to the fleet's average over the minute.
        weight = min(interval, 60) / 60
        values[(metrics.UPLOADS_IN_PROGRESS, metrics.FLEET)] += uploads * weight
        values[(metrics.BYTES_IN_FLIGHT, metrics.FLEET)] += bytes_ * weight
        for metric, count in zip(metrics.COUNTS, counts):
            values[(metric, metrics.FLEET)] += count
        for client_id, stats in clients.items():
            subject = metrics.client_subject(client_id)
            for metric in metrics.GAUGES:
                values[(metric, subject)] += stats.get(metric, 0) * weight
            for metric in metrics.COUNTS:
                values[(metric, subject)] += stats.get(metric, 0)
    rows = [_single(minute, metric, subject, value) for (metric, subject), value in values.items()]
    server_means = {name: sum(v) / len(v) for name, v in cpu_by_server.items()}
    rows += [
        _single(minute, metrics.CPU_PERCENT, metrics.server_subject(name), mean) for name, mean in server_means.items()
    ]
    means = list(server_means.values())
    rows.append(
        Rollup(
            metric=metrics.CPU_PERCENT,
            subject=metrics.FLEET,
            resolution_seconds=60,
            bucket_start=minute,
            sample_count=1,
            total=sum(means) / len(means),
            minimum=min(means),
            maximum=max(means),
        )
    )
    return rows


def _single(bucket: datetime, metric: str, subject: str, value: float) -> Rollup:
    return Rollup(
        metric=metric,
        subject=subject,
        resolution_seconds=60,
        bucket_start=bucket,
        sample_count=1,
        total=value,
        minimum=value,
        maximum=value,
    )


def _coarser_rows(bucket: datetime, resolution_seconds: int, finer_seconds: int) -> list[Rollup]:
    groups = (
        Rollup.objects.filter(
            resolution_seconds=finer_seconds,
            bucket_start__gte=bucket,
            bucket_start__lt=bucket + timedelta(seconds=resolution_seconds),
        )
        .values("metric", "subject")
        .annotate(count=Sum("sample_count"), sum=Sum("total"), low=Min("minimum"), high=Max("maximum"))
    )
    return [
        Rollup(
            metric=g["metric"],
            subject=g["subject"],
            resolution_seconds=resolution_seconds,
            bucket_start=bucket,
            sample_count=g["count"],
            total=g["sum"],
            minimum=g["low"],
            maximum=g["high"],
        )
        for g in groups
    ]


def write_minute_value(metric: str, subject: str, moment: datetime, value: float) -> None:
    """Store one value per minute for (metric, subject) (a collector's sample); a second write to
    the same minute replaces the first, so a collector that runs twice stores nothing twice."""
    Rollup.objects.update_or_create(
        metric=metric,
        subject=subject,
        resolution_seconds=60,
        bucket_start=metrics.bucket_start(moment, 60),
        defaults={"sample_count": 1, "total": value, "minimum": value, "maximum": value},
    )


def retention_cutoffs(now: datetime) -> dict[str, datetime]:
    return {
        "raw": now - timedelta(hours=settings.METRICS_RAW_RETENTION_HOURS),
        60: now - timedelta(days=settings.METRICS_MINUTE_RETENTION_DAYS),
        600: now - timedelta(days=settings.METRICS_TEN_MINUTE_RETENTION_DAYS),
        3600: now - timedelta(days=settings.METRICS_HOUR_RETENTION_DAYS),
    }


def purge_expired(now: datetime | None = None) -> dict[str, int]:
    """Delete what each level's retention no longer keeps."""
    cutoffs = retention_cutoffs(now or timezone.now())
    deleted = {"raw": ServerReport.objects.filter(received_at__lt=cutoffs["raw"]).delete()[0]}
    for resolution in metrics.RESOLUTIONS_SECONDS:
        deleted[str(resolution)] = Rollup.objects.filter(
            resolution_seconds=resolution, bucket_start__lt=cutoffs[resolution]
        ).delete()[0]
    # A boot's highest sequence dedupes its replays as long as minutes are kept.
    deleted["boots"] = ServerBoot.objects.filter(last_seen_at__lt=cutoffs[metrics.MINUTE_SECONDS]).delete()[0]
    return deleted
