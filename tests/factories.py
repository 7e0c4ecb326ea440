"""Builders the tests share: plain functions and constants, no fixtures (those are in the
conftest.py files) and no tests. Test modules import from here, never from one another.

- users and partners: PASSWORD, make_user, make_partner
- the database: on_postgres, postgres_only
- form posts: limits_post, scale_post
- upload servers and their reports: report_body, make_server, report_seen, seed_fleet_metrics
- alerts: T0, at, sample, tick, drive, rule, alert_state, subjects_of_mail
- scaling groups: make_local_group, make_aws_group, scale
- AWS in moto: REGION, AMI_ID, make_source
- worker processes: start_worker_process, wait_until
- the shared config table outside Django: table_ddl, NOON, star_row, create_sqlite_table,
  insert_sqlite_row, free_port, PostgresCluster
- production settings in a process of its own: PRODUCTION_ENV, run_manage
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core import mail
from django.db import connection
from django.utils import timezone

from alerting import evaluation
from alerting.models import Alert, AlertRule, AlertState
from fleet import scaling
from fleet.models import ScalingAction, ScalingGroup
from monitoring import metrics
from monitoring.models import MetricSource, Rollup, ServerReport, UploadServer
from monitoring.rollups import write_minute_value
from partners import changes
from partners.models import Partner, Priority

REPO = Path(__file__).resolve().parents[1]

# ---- users and partners ------------------------------------------------------------------

PASSWORD = "a-long-test-password"


def make_user(username: str, group: str | None = None, **extra):
    user = get_user_model().objects.create_user(username, f"{username}@example.org", PASSWORD, **extra)
    if group:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


def make_partner(name: str, actor, managers=(), **fields) -> Partner:
    slug = fields.pop("slug", name.lower().replace(" ", "-"))
    values = {
        "name": name,
        "slug": slug,
        "client_id": fields.pop("client_id", f"{slug}-client"),
        "priority": fields.pop("priority", Priority.BULK),
        **fields,
    }
    return changes.create_partner(actor, values, list(managers), "test setup")


# ---- the database ------------------------------------------------------------------------


def on_postgres() -> bool:
    return connection.vendor == "postgresql"


postgres_only = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith(("postgres", "pgsql")),
    reason="needs PostgreSQL: set DATABASE_URL (.ci/run runs the suite on both databases)",
)

# ---- form posts --------------------------------------------------------------------------


def limits_post(partner, **overrides) -> dict:
    """The partner page's limits form, as a manager fills it in."""
    data = {
        "limits-requests_per_minute": "120",
        "limits-burst": "20",
        "limits-max_concurrent_uploads": "16",
        "limits-max_bytes_in_flight": "40 GB",
        "limits-daily_upload_bytes": "4 TB",
        "limits-reason": "backlog import",
        "limits-revision": str(partner.revision),
    }
    data.update({f"limits-{k}": v for k, v in overrides.items()})
    return data


def scale_post(to_capacity=3, from_capacity=2, key=None, reason="backlog import") -> dict:
    """The fleet page's scaling confirmation form."""
    return {
        "from_capacity": from_capacity,
        "to_capacity": to_capacity,
        "idempotency_key": str(key or uuid.uuid4()),
        "reason": reason,
    }


# ---- upload servers and their reports ----------------------------------------------------


def report_body(server_id="upload-1", sequence=1, **overrides) -> dict:
    """A status report as an upload server posts it to the report API."""
    body = {
        "server_id": server_id,
        "sequence": sequence,
        "boot_id": "boot-a",
        "interval_seconds": 5,
        "cpu_percent": 42.5,
        "config_version": 3,
        "clients": {
            "theirstory-sdk": {
                "uploads_in_progress": 4,
                "bytes_in_flight": 8_000_000_000,
                "admitted": 2,
                "throttled": 1,
                "timed_out": 0,
                "completed": 1,
                "failed": 0,
            }
        },
    }
    body.update(overrides)
    return body


def make_server(
    name: str, seen_at: datetime | None = None, interval: int = 5, config_version: int | None = None
) -> UploadServer:
    server = UploadServer.objects.create(
        name=name,
        token_hash=name.ljust(64, "0"),
        token_prefix="x",
        report_interval_seconds=interval,
        last_config_version=config_version,
    )
    if seen_at is not None:
        report_seen(server, seen_at, config_version)
    return server


def report_seen(server: UploadServer, seen_at: datetime, config_version: int | None = None) -> None:
    server.last_seen_at = seen_at
    server.silent_after = UploadServer.silent_after_for(seen_at, server.report_interval_seconds)
    if config_version is not None:
        server.last_config_version = config_version
    server.save()


def seed_fleet_metrics(
    servers: int,
    minutes: int,
    clients=("theirstory-sdk", "fas-importer", "someone-else"),
    cpu_of_server=lambda index: 50,
) -> None:
    """`servers` live upload servers with their reports and `minutes` of rolled-up metrics."""
    now = timezone.now()
    fleet = [
        UploadServer.objects.create(
            name=f"s{i}",
            token_hash=f"{i:064d}",
            token_prefix="x",
            last_seen_at=now,
            silent_after=now + timedelta(seconds=15),
        )
        for i in range(servers)
    ]
    ServerReport.objects.bulk_create(
        [
            ServerReport(
                server=s,
                sequence=m,
                received_at=now - timedelta(minutes=m),
                interval_seconds=5,
                cpu_percent=cpu_of_server(i),
                config_version=1,
                uploads_in_progress=1,
                bytes_in_flight=10,
                admitted=1,
                throttled=0,
                timed_out=0,
                completed=1,
                clients={},
            )
            for i, s in enumerate(fleet)
            for m in range(min(minutes, 60))
        ]
    )
    rows = []
    for m in range(minutes):
        bucket = metrics.bucket_start(now - timedelta(minutes=m), 60)
        subjects = [(metrics.CPU_PERCENT, f"server:{s.name}") for s in fleet] + [(metrics.CPU_PERCENT, "fleet")]
        subjects += [(metric, f"client:{c}") for c in clients for metric in metrics.GAUGES + metrics.COUNTS]
        subjects += [(metrics.THROTTLED, "fleet"), (metrics.TIMED_OUT, "fleet"), (metrics.QUEUE_VISIBLE, "queue:Video")]
        rows += [
            Rollup(
                metric=metric,
                subject=subject,
                resolution_seconds=res,
                bucket_start=bucket,
                sample_count=1,
                total=m % 7,
                minimum=0,
                maximum=9,
            )
            for metric, subject in subjects
            for res in (60, 600, 3600)
        ]
    Rollup.objects.bulk_create(rows, ignore_conflicts=True)


# ---- alerts: synthetic minute values and a clock -----------------------------------------

T0 = datetime(2026, 11, 28, 10, 0, 10, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def rule(slug: str) -> AlertRule:
    return AlertRule.objects.get(slug=slug)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def sample(metric: str, subject: str, now: datetime, value: float) -> None:
    """The minute value that an evaluation at `now` sees as the newest complete minute."""
    from monitoring.rollups import last_complete_minute

    write_minute_value(metric, subject, last_complete_minute(now), value)


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


# ---- scaling groups ----------------------------------------------------------------------


def make_local_group(name: str = "sim-fleet", desired: int = 2, **fields) -> ScalingGroup:
    fields = {"min_capacity": 1, "max_capacity": 5, "cooldown_seconds": 300, **fields}
    return ScalingGroup.objects.create(
        name=name, backend=ScalingGroup.Backend.LOCAL, desired_capacity=desired, **fields
    )


def make_aws_group(aws_group_name: str = "upload-servers", **fields) -> ScalingGroup:
    fields = {"min_capacity": 1, "max_capacity": 8, "cooldown_seconds": 300, **fields}
    return ScalingGroup.objects.create(
        name=fields.pop("name", "aws-uploads"),
        backend=ScalingGroup.Backend.AWS,
        aws_group_name=aws_group_name,
        **fields,
    )


def scale(
    group: ScalingGroup,
    actor,
    to_capacity: int,
    from_capacity: int | None = None,
    reason: str = "backlog import",
    key: uuid.UUID | None = None,
) -> ScalingAction:
    """Request and run an action as the view does; the action as it ended."""
    if from_capacity is None:
        from fleet.backends import backend_for

        group.refresh_from_db()
        from_capacity = backend_for(group).describe(group).desired
    action, created = scaling.request_scaling(group, actor, from_capacity, to_capacity, reason, key or uuid.uuid4())
    if created:
        scaling.enqueue(action)
    action.refresh_from_db()
    return action


# ---- AWS in moto (the fake_aws_environment fixture is in tests/conftest.py) ---------------

REGION = "us-east-1"
AMI_ID = "ami-12c6146b"  # one of the images moto knows


def make_source(kind: str, name: str) -> MetricSource:
    return MetricSource.objects.create(kind=kind, name=name)


# ---- worker processes --------------------------------------------------------------------


def start_worker_process(code: str, **environment: str) -> subprocess.Popen:
    """A worker process of its own (a process group, for killpg) running `code` against the
    test's database."""
    test_database = connection.settings_dict["NAME"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "dashboard.settings_test",
        "DATABASE_URL": os.environ["DATABASE_URL"].rsplit("/", 1)[0] + f"/{test_database}",
        **environment,
    }
    return subprocess.Popen(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(predicate, timeout_seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


# ---- the shared config table outside Django ----------------------------------------------

TABLE_DOC = REPO / "docs" / "shared-config-table.md"


def table_ddl() -> str:
    """The DDL from the table contract (docs/shared-config-table.md), so the doc is what we test."""
    text = TABLE_DOC.read_text()
    section = text[text.index("## DDL") :]
    return re.search(r"```sql\n(.*?)```", section, re.S).group(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


NOON = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)  # the gate tests' manual clock starts here


def star_row(**values) -> dict:
    return {"client_id": "*", "version": 1, "live_server_count": 1, **values}


def create_sqlite_table(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.executescript(table_ddl())


def insert_sqlite_row(path: Path, **values) -> None:
    row = {
        "requests_per_minute": None,
        "burst": None,
        "max_concurrent_uploads": None,
        "max_bytes_in_flight": None,
        "daily_upload_bytes": None,
        "paused": 0,
        "pause_reason": "",
        "resume_at": None,
        "priority": "interactive",
        "version": 1,
        "updated_at": "2025-03-01 00:00:00",
        "all_partners_paused": 0,
        "all_partners_pause_reason": "",
        "all_partners_resume_at": None,
        "live_server_count": 1,
        **values,
    }
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    with sqlite3.connect(path) as conn:
        conn.execute(f"INSERT OR REPLACE INTO upload_limits ({columns}) VALUES ({marks})", list(row.values()))


def pg_bin() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    preferred = Path("/usr/lib/postgresql/15/bin/initdb")
    found = preferred if preferred.exists() else (Path(candidates[0]) if candidates else None)
    if found is None:
        pytest.fail(
            "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin). "
            "Install them with `apt-get install -y postgresql`; "
            "the upload gate's fault tests need a real server."
        )
    return found.parent


class PostgresCluster:
    """A throwaway cluster: initdb in a temp dir, pg_ctl start/stop, trust auth on 127.0.0.1."""

    def __init__(self) -> None:
        self.bin = pg_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="upload-gate-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0  # initdb refuses to run as root
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8")

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-o", options, "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        with psycopg.connect(self.dsn(name), autocommit=True) as conn:
            conn.execute(table_ddl())
        return self.dsn(name)

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- production settings in a process of its own -----------------------------------------

# What an operator sets in production (docs/deploy.md); tests add a DATABASE_URL they can reach.
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "x7!k2p#q9v@m4w$z8r&t1y^u6i*o3e(a5s)d0f_g-h+j=k~l<n>b?c",
    "ALLOWED_HOSTS": "upload-ops.example.org",
    "DATABASE_URL": "postgres://ops@db.internal:5432/uploadops",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "EMAIL_URL": "smtp+tls://alerts:secret@smtp.example.org:587",
    # The TLS proxy in front: the test client's requests come from 127.0.0.1.
    "TRUSTED_PROXY_IPS": "127.0.0.1",
    "DASHBOARD_BASE_URL": "https://upload-ops.example.org",
}


def run_manage(*args: str, env: dict, timeout_seconds: float = 120) -> subprocess.CompletedProcess:
    """manage.py with only `env` and the machine's basics: the test run's own settings (and
    Playwright's DJANGO_ALLOW_ASYNC_UNSAFE) must not leak into "production"."""
    clean_env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_seconds,
        env={**clean_env, "DJANGO_SETTINGS_MODULE": "dashboard.settings", **env},
    )
