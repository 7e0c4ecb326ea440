"""Rollups per minute, ten minutes and hour; retention."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from monitoring import metrics, rollups
from monitoring.models import Rollup, ServerBoot, ServerReport, UploadServer
from monitoring.rollups import write_minute_value

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
SEQUENCES = itertools.count(1)


def server(name: str) -> UploadServer:
    return UploadServer.objects.create(name=name, token_hash=name.ljust(64, "0"), token_prefix="x")


def report(srv, at, cpu=50.0, interval=5, clients=None) -> ServerReport:
    clients = clients or {}
    totals = {m: sum(c.get(m, 0) for c in clients.values()) for m in (*metrics.GAUGES, *metrics.COUNTS)}
    return ServerReport.objects.create(
        server=srv,
        sequence=next(SEQUENCES),
        received_at=at,
        interval_seconds=interval,
        cpu_percent=cpu,
        config_version=1,
        clients=clients,
        **totals,
    )


def value(metric, subject, resolution=60, bucket=T0) -> Rollup:
    return Rollup.objects.get(metric=metric, subject=subject, resolution_seconds=resolution, bucket_start=bucket)


@pytest.mark.django_db
def test_a_minute_holds_each_servers_mean_cpu_and_the_fleets():
    a, b = server("a"), server("b")
    report(a, T0 + timedelta(seconds=5), cpu=40)
    report(a, T0 + timedelta(seconds=35), cpu=60)
    report(b, T0 + timedelta(seconds=10), cpu=80)
    rollups.roll_up(T0 + timedelta(minutes=1, seconds=10))
    assert value(metrics.CPU_PERCENT, "server:a").value == 50
    fleet = value(metrics.CPU_PERCENT, metrics.FLEET)
    assert fleet.value == 65 and fleet.minimum == 50 and fleet.maximum == 80


@pytest.mark.django_db
def test_gauges_are_weighted_by_the_time_each_report_covers():
    a, b = server("a"), server("b")
    for i in range(12):  # every 5 s for a whole minute, on two servers
        report(a, T0 + timedelta(seconds=5 * i), clients={"ts": {"uploads_in_progress": 4, "throttled": 1}})
        report(b, T0 + timedelta(seconds=5 * i + 2), clients={"ts": {"uploads_in_progress": 6}})
    rollups.roll_up(T0 + timedelta(minutes=2))
    assert value(metrics.UPLOADS_IN_PROGRESS, "client:ts").value == pytest.approx(10)
    assert value(metrics.UPLOADS_IN_PROGRESS, metrics.FLEET).value == pytest.approx(10)
    assert value(metrics.THROTTLED, "client:ts").value == 12
    assert value(metrics.THROTTLED, metrics.FLEET).value == 12


@pytest.mark.django_db
def test_the_minute_still_filling_is_not_rolled():
    report(server("a"), T0 + timedelta(seconds=5))
    rollups.roll_up(T0 + timedelta(seconds=50))
    assert not Rollup.objects.exists()


@pytest.mark.django_db
def test_ten_minute_and_hour_buckets_average_their_minutes():
    for minute in range(60):
        write_minute_value(metrics.QUEUE_VISIBLE, "queue:Video", T0 + timedelta(minutes=minute), minute)
    rollups.roll_up(T0 + timedelta(hours=1, minutes=1))
    ten = value(metrics.QUEUE_VISIBLE, "queue:Video", 600, T0)
    assert ten.sample_count == 10 and ten.value == pytest.approx(4.5) and ten.maximum == 9
    hour = value(metrics.QUEUE_VISIBLE, "queue:Video", 3600, T0)
    assert hour.sample_count == 60 and hour.value == pytest.approx(29.5)
    assert hour.minimum == 0 and hour.maximum == 59


@pytest.mark.django_db
def test_rolling_up_twice_stores_nothing_twice():
    a = server("a")
    for i in range(30):
        report(a, T0 + timedelta(seconds=20 * i), cpu=i)
    rollups.roll_up(T0 + timedelta(minutes=30))
    first = sorted(Rollup.objects.values_list("metric", "subject", "resolution_seconds", "bucket_start", "total"))
    rollups.roll_up(T0 + timedelta(minutes=30))
    assert (
        sorted(Rollup.objects.values_list("metric", "subject", "resolution_seconds", "bucket_start", "total")) == first
    )


@pytest.mark.django_db
def test_a_late_datapoint_reaches_the_coarser_bucket_on_the_next_run():
    write_minute_value(metrics.CPU_PERCENT, "instance:i-1", T0, 10)
    rollups.roll_up(T0 + timedelta(minutes=10, seconds=10))
    write_minute_value(metrics.CPU_PERCENT, "instance:i-1", T0 + timedelta(minutes=9), 30)  # arrives late
    rollups.roll_up(T0 + timedelta(minutes=11))
    assert value(metrics.CPU_PERCENT, "instance:i-1", 600).value == 20


@pytest.mark.django_db
def test_retention_purges_each_level_at_its_own_age(settings):
    settings.METRICS_RAW_RETENTION_HOURS = 6
    settings.METRICS_MINUTE_RETENTION_DAYS = 14
    settings.METRICS_TEN_MINUTE_RETENTION_DAYS = 90
    settings.METRICS_HOUR_RETENTION_DAYS = 400
    now = T0
    a = server("a")
    report(a, now - timedelta(hours=7))
    kept = report(a, now - timedelta(hours=5))
    for resolution, age_days in ((60, 15), (600, 91), (3600, 401)):
        for days in (age_days, age_days - 2):
            Rollup.objects.create(
                metric="m",
                subject="s",
                resolution_seconds=resolution,
                bucket_start=now - timedelta(days=days),
                sample_count=1,
                total=1,
                minimum=1,
                maximum=1,
            )
    for boot_id, days in (("old-boot", 15), ("recent-boot", 13)):
        ServerBoot.objects.create(server=a, boot_id=boot_id, last_sequence=1, last_seen_at=now - timedelta(days=days))
    deleted = rollups.purge_expired(now)
    assert deleted == {"raw": 1, "60": 1, "600": 1, "3600": 1, "boots": 1}
    assert list(ServerBoot.objects.values_list("boot_id", flat=True)) == ["recent-boot"]
    assert list(ServerReport.objects.all()) == [kept]
    assert Rollup.objects.count() == 3
