"""Check that this deployment can do its job, and say what is wrong: exit code 1 if anything is.

    manage.py check_config [--reason "after the RDS failover"]

Settings (Django's checks, with the deployment checks when DEBUG is off), the database (reachable,
every migration applied), the broker (Redis when REDIS_URL is set; else the database), email (an
SMTP server that accepts a connection), and AWS (credentials, and every AWS scaling group and
metric source readable) — each on a line of its own. The run is audited as the system actor.
"""

from collections.abc import Callable

import boto3
from django.conf import settings
from django.core import checks
from django.core.mail import get_connection
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.migrations.executor import MigrationExecutor

from core import audit
from core.commands import audit_reason
from dashboard.models import OperationsAudit
from fleet.models import ScalingGroup
from monitoring import aws
from monitoring.models import MetricSource

LOCAL_BASE_URLS = ("http://127.0.0.1", "http://localhost")


class Problem(Exception):
    """What is wrong with one part of the configuration, in words."""


def check_settings() -> str:
    found = checks.run_checks(include_deployment_checks=not settings.DEBUG)
    serious = [message for message in found if message.level >= checks.WARNING and not message.is_silenced()]
    if not settings.DEBUG and settings.DASHBOARD_BASE_URL.startswith(LOCAL_BASE_URLS):
        raise Problem(f"DASHBOARD_BASE_URL is {settings.DASHBOARD_BASE_URL}: links in emails would point nowhere")
    if serious:
        raise Problem("; ".join(f"{message.id}: {message.msg}" for message in serious))
    return "DEBUG is on (local use)" if settings.DEBUG else "deployment checks pass"


def check_database() -> str:
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        connection.ensure_connection()
    except Exception as error:  # noqa: BLE001 - any driver's failure is the answer
        raise Problem(f"cannot connect ({type(error).__name__}: {error}) — check DATABASE_URL") from error
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        names = ", ".join(f"{migration.app_label}.{migration.name}" for migration, _ in pending[:5])
        raise Problem(f"{len(pending)} migration(s) not applied ({names}) — run manage.py migrate")
    return f"{connection.vendor}, every migration applied"


def check_broker() -> str:
    if not settings.REDIS_URL:
        return "django-q2 uses the database as its broker (REDIS_URL unset)"
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3, socket_timeout=3).ping()
    except redis.RedisError as error:
        raise Problem(f"Redis at REDIS_URL does not answer ({error})") from error
    return "Redis answers"


def check_email() -> str:
    backend = settings.EMAIL_BACKEND
    if not backend.endswith("smtp.EmailBackend"):
        if not settings.DEBUG:
            raise Problem(f"EMAIL_URL sends to {backend.rsplit('.', 2)[-2]}: alert emails reach no one")
        return f"{backend.rsplit('.', 2)[-2]} backend (local use)"
    connection = get_connection(fail_silently=False, timeout=settings.ALERT_EMAIL_TIMEOUT_SECONDS)
    try:
        connection.open()
    except Exception as error:  # noqa: BLE001 - smtplib and socket errors alike
        raise Problem(f"SMTP {settings.EMAIL_HOST}:{settings.EMAIL_PORT} refused or unreachable ({error})") from error
    connection.close()
    return f"SMTP {settings.EMAIL_HOST}:{settings.EMAIL_PORT} accepts a connection"


def check_aws() -> str:
    groups = list(ScalingGroup.objects.filter(backend=ScalingGroup.Backend.AWS))
    sources = list(MetricSource.objects.filter(enabled=True))
    if not groups and not sources:
        return "not used (no AWS scaling group or metric source)"
    if boto3.session.Session().get_credentials() is None:
        raise Problem("no AWS credentials — give the worker an IAM role or set AWS_ACCESS_KEY_ID")
    client = aws.autoscaling_client()
    for group in groups:
        try:
            aws.describe_autoscaling_group(client, group.aws_group_name)
        except aws.AwsError as error:
            raise Problem(f"scaling group {group.name}: {error}") from error
    return f"credentials found; {len(groups)} AWS scaling group(s) readable"


CHECKS: dict[str, Callable[[], str]] = {
    "settings": check_settings,
    "database": check_database,
    "broker": check_broker,
    "email": check_email,
    "aws": check_aws,
}


class Command(BaseCommand):
    help = "Check settings, database, broker, email and AWS; exit 1 saying what is wrong."

    def add_arguments(self, parser):
        parser.add_argument("--reason", default="configuration check", help="written to the audit log")

    def handle(self, *args, reason: str, **options):
        why = audit_reason("check_config", reason)
        results = {}
        for name, check in CHECKS.items():
            try:
                results[name] = ("ok", check())
            except Problem as problem:
                results[name] = ("FAIL", str(problem))
            self.stdout.write(f"{results[name][0]:<4}  {name:<8}  {results[name][1]}")
        failed = [name for name, (outcome, _) in results.items() if outcome == "FAIL"]
        if "database" not in failed:
            with transaction.atomic():
                audit.record(
                    None,
                    OperationsAudit.CONFIG_CHECKED,
                    "configuration",
                    {},
                    {name: outcome for name, (outcome, _) in results.items()},
                    why,
                )
        if failed:
            raise CommandError(f"Configuration problems: {', '.join(failed)}.")
