"""The worker's heartbeat, and telling people when it stops.

If the django-q2 cluster dies there are no rollups, no alerts and temporary limits never
revert, and alerting cannot say so: it runs inside what died. So the worker only beats
(beat(), scheduled every minute), and the web processes watch the beat:

- every page shows a banner while it is stale (templates/partials/worker_banner.html);
- /readyz and the report API call check(), which opens a WorkerOutage when the beat is older
  than WORKER_HEARTBEAT_STALE_SECONDS and sends engineers one email, then one more when the
  beat is fresh again. Several web processes notice at once; the conditional updates below let
  exactly one of them send each email.

A worker that has never beaten (a new install, `make test`) shows the banner and fails
/readyz, but emails nobody: there is no outage until something that ran has stopped.
"""

import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from core import roles
from core.mail import TransportError, dashboard_link, send_email, templated_email
from core.models import WorkerHeartbeat, WorkerOutage

logger = logging.getLogger(__name__)

HEARTBEAT_PK = 1
# A failed email is tried again by the next check after this long (checks come with every
# readiness probe and report, so without a pause a dead SMTP server would be asked each time).
NOTICE_RETRY_SECONDS = 60
# The report API checks at most this often per process: reports arrive hundreds a second.
INGEST_CHECK_INTERVAL_SECONDS = 30
STALE, RECOVERED = "stale", "recovered"


@dataclass(frozen=True)
class HeartbeatStatus:
    beat_at: datetime | None
    beaten_by: str
    age_seconds: float | None
    stale_after_seconds: int

    @property
    def never_beaten(self) -> bool:
        return self.beat_at is None

    @property
    def fresh(self) -> bool:
        return self.age_seconds is not None and self.age_seconds <= self.stale_after_seconds

    @property
    def age_minutes(self) -> int | None:
        return None if self.age_seconds is None else int(self.age_seconds // 60)


def beat(now: datetime | None = None) -> str:
    """The scheduled task: record that a worker is alive, then end an outage if one was open."""
    now = now or timezone.now()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    WorkerHeartbeat.objects.update_or_create(pk=HEARTBEAT_PK, defaults={"beat_at": now, "beaten_by": worker})
    check(now)
    return now.isoformat()


def heartbeat_status(now: datetime | None = None) -> HeartbeatStatus:
    now = now or timezone.now()
    heartbeat = WorkerHeartbeat.objects.filter(pk=HEARTBEAT_PK).first()
    stale_after = settings.WORKER_HEARTBEAT_STALE_SECONDS
    if heartbeat is None:
        return HeartbeatStatus(None, "", None, stale_after)
    age_seconds = max(0.0, (now - heartbeat.beat_at).total_seconds())
    return HeartbeatStatus(heartbeat.beat_at, heartbeat.beaten_by, age_seconds, stale_after)


def check(now: datetime | None = None) -> HeartbeatStatus:
    """Open or end the outage the heartbeat's age calls for, and send the email that is due."""
    now = now or timezone.now()
    status = heartbeat_status(now)
    if status.never_beaten:
        return status
    if not status.fresh:
        outage = _open_outage(status, now)
        if outage.stale_notice_sent_at is None:
            _send_notice(outage, STALE, status, now)
        return status
    for outage in WorkerOutage.objects.filter(
        Q(ended_at=None) | Q(stale_notice_sent_at__isnull=False, recovery_notice_sent_at=None)
    ):
        if outage.ended_at is None:
            WorkerOutage.objects.filter(pk=outage.pk, ended_at=None).update(ended_at=now)
        if outage.stale_notice_sent_at is not None:
            _send_notice(outage, RECOVERED, status, now)
    return status


_next_ingest_check = 0.0


def check_now_and_then() -> None:
    """check() at most every INGEST_CHECK_INTERVAL_SECONDS in this process; never raises, since
    a report must be accepted whatever happens to the heartbeat's email."""
    global _next_ingest_check
    if time.monotonic() < _next_ingest_check:
        return
    _next_ingest_check = time.monotonic() + INGEST_CHECK_INTERVAL_SECONDS
    try:
        check()
    except Exception:  # noqa: BLE001 - logged; the report itself was stored already
        logger.exception("checking the worker heartbeat failed")


def _open_outage(status: HeartbeatStatus, now: datetime) -> WorkerOutage:
    """The open outage; one is opened for this stale beat if none is (the unique beat time makes
    two processes that race here open the same one)."""
    outage = WorkerOutage.objects.filter(ended_at=None).first()
    if outage is not None:
        return outage
    try:
        with transaction.atomic():
            outage = WorkerOutage.objects.create(last_beat_at=status.beat_at, noticed_at=now)
    except IntegrityError:
        return WorkerOutage.objects.get(last_beat_at=status.beat_at)
    logger.error(
        "worker heartbeat stale",
        extra={"heartbeat_age_seconds": round(status.age_seconds), "beaten_by": status.beaten_by},
    )
    return outage


def _claim_notice(outage: WorkerOutage, kind: str, now: datetime) -> bool:
    """True for the one process that may send this email now (a conditional update of one row)."""
    unsent = (
        Q(stale_notice_sent_at=None, ended_at=None)
        if kind == STALE
        else Q(stale_notice_sent_at__isnull=False, recovery_notice_sent_at=None)
    )
    free = Q(notice_claimed_at=None) | Q(notice_claimed_at__lt=now - timedelta(seconds=NOTICE_RETRY_SECONDS))
    return WorkerOutage.objects.filter(unsent, free, pk=outage.pk).update(notice_claimed_at=now) == 1


def _send_notice(outage: WorkerOutage, kind: str, status: HeartbeatStatus, now: datetime) -> bool:
    if not _claim_notice(outage, kind, now):
        return False
    sent_field = "stale_notice_sent_at" if kind == STALE else "recovery_notice_sent_at"
    outage.refresh_from_db()
    recipients = roles.engineer_addresses() or [address for _name, address in settings.ADMINS]
    try:
        if not recipients:
            raise TransportError("no engineer (nor ADMINS) has an email address", permanent=True)
        send_email(templated_email(f"worker-{kind}", _context(outage, status, now), recipients))
    except TransportError as error:
        logger.error("worker heartbeat email not sent", extra={"notice": kind, "error": error.message})
        done = {sent_field: now, "notice_claimed_at": None} if error.permanent else {}
        WorkerOutage.objects.filter(pk=outage.pk).update(last_notice_error=error.message, **done)
        return False
    WorkerOutage.objects.filter(pk=outage.pk).update(**{sent_field: now}, notice_claimed_at=None, last_notice_error="")
    return True


def _context(outage: WorkerOutage, status: HeartbeatStatus, now: datetime) -> dict:
    return {
        "outage": outage,
        "status": status,
        "stale_after_minutes": status.stale_after_seconds // 60,
        "down_minutes": int((now - outage.last_beat_at).total_seconds() // 60),
        "link": dashboard_link("/"),
        "runbook_url": settings.ALERT_RUNBOOK_URL + "#worker-heartbeat-stale",
    }
