"""Small builders the alert tests share: synthetic minute values, servers, a clock.

(No tests here; it is named test_alert_* to stay within the alert tests' files.)
"""

from datetime import datetime, timedelta, timezone as dt_timezone

from django.core import mail

from monitoring.alert_models import Alert, AlertRule, AlertState
from monitoring.alerting import evaluation
from monitoring.models import UploadServer
from monitoring.storage import write_minute_value

T0 = datetime(2026, 11, 28, 10, 0, 10, tzinfo=dt_timezone.utc)
MINUTE = timedelta(minutes=1)


def rule(slug: str) -> AlertRule:
    return AlertRule.objects.get(slug=slug)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def sample(metric: str, subject: str, now: datetime, value: float) -> None:
    """The minute value that an evaluation at `now` sees as the newest complete minute."""
    write_minute_value(metric, subject, now - MINUTE, value)


def tick(now: datetime, samples: dict | None = None) -> dict:
    """Write this minute's samples ({(metric, subject): value}) and run one evaluation cycle."""
    for (metric, subject), value in (samples or {}).items():
        sample(metric, subject, now, value)
    return evaluation.run(now)


def drive(start_minute: int, series: list, key: tuple) -> int:
    """One tick per minute with series[i] (None = no sample); returns the next minute."""
    for i, value in enumerate(series):
        tick(at(start_minute + i), {} if value is None else {key: value})
    return start_minute + len(series)


def alert_state(rule_slug: str, subject: str = "fleet") -> str:
    latest = Alert.objects.filter(rule__slug=rule_slug, subject=subject).order_by("-id").first()
    return latest.state if latest else AlertState.OK


def subjects_of_mail() -> list[str]:
    return [message.subject for message in mail.outbox]


def make_server(name: str, seen_at: datetime | None = None, interval: int = 5,
                config_version: int | None = None) -> UploadServer:
    server = UploadServer.objects.create(name=name, token_hash=name.ljust(64, "0"), token_prefix="x",
                                         report_interval_seconds=interval, last_config_version=config_version)
    if seen_at is not None:
        report_seen(server, seen_at, config_version)
    return server


def report_seen(server: UploadServer, seen_at: datetime, config_version: int | None = None) -> None:
    server.last_seen_at = seen_at
    server.silent_after = UploadServer.silent_after_for(seen_at, server.report_interval_seconds)
    if config_version is not None:
        server.last_config_version = config_version
    server.save()
