"""Hosts that enrol themselves (docs/status-report.md, "Enrolment").

A host presents the fleet enrolment secret and who it is (its host id: an instance id or host
name); it gets its own report token. The host id is the server's identity: enrolling again
(after a reboot, a lost token file, a deregistration) finds the same entry and replaces its
token, so a host counts once however many worker processes it runs and however often it starts.

Ops create and rotate the secret on the servers page; only its hash is kept, and both are
audited. Wrong secrets are counted per address: after ENROLMENT_FAILURE_LIMIT of them within
ENROLMENT_LOCKOUT_MINUTES the address waits (EnrolmentThrottled), in the database so that every
web process shares the count.
"""

import hmac
import json
import logging
import re
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core import audit
from monitoring import servers
from monitoring.models import EnrolmentFailure, EnrolmentSecret, ServerAudit, UploadServer, hash_token

logger = logging.getLogger(__name__)

MAX_ENROLMENT_BYTES = 4096
HOST_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,254}")
INSTANCE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")
SERVER_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
GROUP_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
ENROLMENT_FIELDS = ("host_id", "instance_id", "name", "scaling_group")
DEREGISTERED_REASON = "deregistered by the host at an orderly shutdown"


class InvalidEnrolment(ValueError):
    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


class EnrolmentRefused(Exception):
    """An enrolment that cannot be made as asked; `status` is the HTTP answer (403, 409)."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class EnrolmentRequest:
    host_id: str
    name: str
    instance_id: str = ""
    scaling_group: str = ""


@dataclass(frozen=True)
class Enrolled:
    server: UploadServer
    token: str
    created: bool


# ---- the secret ----------------------------------------------------------------------------


def current_secret() -> EnrolmentSecret | None:
    return EnrolmentSecret.objects.filter(current=True).first()


def rotate_secret(actor, reason: str, previous_valid_seconds: int = 0) -> str:
    """A new current secret (the first one, or one replacing the current); shown once.

    The replaced secret stays valid `previous_valid_seconds` longer (0: it stops at once).
    Two rotations at the same moment: one wins, the other is refused (RefusedChange).
    """
    now = timezone.now()
    try:
        with transaction.atomic():
            previous = EnrolmentSecret.objects.select_for_update().filter(current=True).first()
            before = {}
            if previous is not None:
                before = {"secret_prefix": previous.secret_prefix}
                previous.current = None
                previous.valid_until = now + timedelta(seconds=previous_valid_seconds)
                previous.save(update_fields=["current", "valid_until"])
            fresh = EnrolmentSecret(created_by=actor, created_at=now)
            secret = fresh.issue()
            fresh.save()
            after = {"secret_prefix": fresh.secret_prefix}
            if previous is not None:
                after["previous_valid_until"] = previous.valid_until
            audit.record(
                actor,
                ServerAudit.ENROLMENT_SECRET_ROTATED if previous else ServerAudit.ENROLMENT_SECRET_CREATED,
                "fleet enrolment secret",
                before,
                {name: audit.json_value(value) for name, value in after.items()},
                reason,
                fresh,
            )
    except IntegrityError as error:
        raise audit.RefusedChange(
            "Someone else replaced the enrolment secret at the same moment. Nothing was saved: "
            "reload to see theirs, and rotate again if you still need to."
        ) from error
    return secret


def earlier_valid_secrets(now=None) -> list[EnrolmentSecret]:
    """Replaced secrets that still enrol hosts for a while."""
    return list(EnrolmentSecret.valid(now).filter(current=None))


def secret_is_valid(secret: str, now=None) -> bool:
    digest = hash_token(secret)
    match = EnrolmentSecret.valid(now).filter(secret_hash=digest).first()
    # The lookup is by hash; compare once more in constant time before trusting it.
    return match is not None and hmac.compare_digest(match.secret_hash, digest)


def enrolment_is_on(now=None) -> bool:
    return EnrolmentSecret.valid(now).exists()


# ---- wrong secrets wait --------------------------------------------------------------------


def seconds_throttled(address: str, now=None) -> int:
    """How long this address must wait before enrolling again (0: it may enrol now)."""
    now = now or timezone.now()
    window = timedelta(minutes=settings.ENROLMENT_LOCKOUT_MINUTES)
    recent = EnrolmentFailure.objects.filter(address=address, at__gt=now - window).order_by("-at")
    failures = list(recent.values_list("at", flat=True)[: settings.ENROLMENT_FAILURE_LIMIT])
    if len(failures) < settings.ENROLMENT_FAILURE_LIMIT:
        return 0
    # Free again once the oldest of the last LIMIT failures leaves the window.
    return max(1, int((failures[-1] + window - now).total_seconds()) + 1)


def record_failure(address: str, now=None) -> None:
    now = now or timezone.now()
    window = timedelta(minutes=settings.ENROLMENT_LOCKOUT_MINUTES)
    with transaction.atomic():
        EnrolmentFailure.objects.filter(address=address, at__lte=now - window).delete()
        EnrolmentFailure.objects.create(address=address, at=now)
    logger.warning("enrolment with a wrong or missing secret from %s", address)


def purge_old_failures(now=None) -> int:
    """Forget wrong secrets that no longer count (every address's, not only those that retry)."""
    cutoff = (now or timezone.now()) - timedelta(minutes=settings.ENROLMENT_LOCKOUT_MINUTES)
    return EnrolmentFailure.objects.filter(at__lte=cutoff).delete()[0]


# ---- the request -----------------------------------------------------------------------------


def parse_enrolment(body: bytes) -> EnrolmentRequest:
    """Parse and check an enrolment body; raise InvalidEnrolment naming every field that is wrong."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise InvalidEnrolment({"body": f"not valid JSON ({error})"}) from error
    if not isinstance(data, dict):
        raise InvalidEnrolment({"body": "must be a JSON object"})
    errors = {name: "unknown field" for name in sorted(set(data) - set(ENROLMENT_FIELDS))}
    host_id = _text(data, "host_id", HOST_ID_RE, errors, required=True)
    instance_id = _text(data, "instance_id", INSTANCE_ID_RE, errors, required=False)
    name = _text(data, "name", SERVER_NAME_RE, errors, required=False)
    scaling_group = _text(data, "scaling_group", GROUP_NAME_RE, errors, required=False)
    if not name and "name" not in errors and host_id:
        if SERVER_NAME_RE.fullmatch(host_id):
            name = host_id
        else:
            errors["name"] = "required when host_id is not a valid server name (letters, digits, . _ -; up to 100)"
    if errors:
        raise InvalidEnrolment(errors)
    return EnrolmentRequest(host_id=host_id, name=name, instance_id=instance_id, scaling_group=scaling_group)


def _text(data: dict, name: str, pattern: re.Pattern, errors: dict, required: bool) -> str:
    value = data.get(name)
    if value is None or value == "":
        if required:
            errors[name] = "required"
        return ""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        errors[name] = f"must be a string matching ^{pattern.pattern}$"
        return ""
    return value


# ---- enrolling and deregistering -----------------------------------------------------------


def enrol_host(request: EnrolmentRequest, now=None) -> Enrolled:
    """The host's one server entry with a new token: created on its first enrolment, found again
    (and brought back if gone) on every later one. Safe when the same host enrols twice at once.

    Raises EnrolmentRefused: 403 when ops revoked the host's server, 409 when the name belongs to
    another server.
    """
    now = now or timezone.now()
    for _attempt in range(3):
        try:
            with transaction.atomic():
                server = UploadServer.objects.select_for_update().filter(host_id=request.host_id).first()
                if server is None:
                    return _enrol_new(request, now)
                return _enrol_again(server, request, now)
        except IntegrityError:
            # Another enrolment of this host committed first (enrol onto its entry), or the name
            # was taken meanwhile (refused on the next attempt).
            continue
    raise EnrolmentRefused(409, f"could not enrol host {request.host_id}: its entry changed meanwhile; retry")


def _enrol_new(request: EnrolmentRequest, now) -> Enrolled:
    named = UploadServer.objects.select_for_update().filter(name=request.name).first()
    if named is not None and named.host_id == request.host_id:
        return _enrol_again(named, request, now)  # the same host, enrolled a moment ago by a twin
    if named is not None:
        raise EnrolmentRefused(
            409,
            f"the name {request.name} belongs to another server; enrol with another name (or host_id)",
        )
    server = UploadServer(
        name=request.name,
        host_id=request.host_id,
        instance_id=request.instance_id,
        scaling_group=request.scaling_group,
        enrolled_at=now,
        created_at=now,
    )
    token = server.issue_token()
    server.save()  # an IntegrityError here (same host or name, concurrently) is retried by enrol_host
    audit.record(
        None,
        ServerAudit.SERVER_ENROLLED,
        f"server {server.name}",
        {},
        {
            "host_id": server.host_id,
            "instance_id": server.instance_id,
            "scaling_group": server.scaling_group,
            "token_prefix": server.token_prefix,
        },
        f"enrolled by host {server.host_id} with the fleet enrolment secret",
        server,
    )
    return Enrolled(server, token, created=True)


def _enrol_again(server: UploadServer, request: EnrolmentRequest, now) -> Enrolled:
    if server.revoked_at is not None:
        raise EnrolmentRefused(
            403, f"ops revoked server {server.name} (host {server.host_id}); only ops can let it report again"
        )
    fields = ("instance_id", "scaling_group", "token_prefix")
    before = {name: getattr(server, name) for name in fields} | {"gone": server.gone_at is not None}
    was_gone = server.gone_reason if server.gone_at else ""
    token = server.issue_token()
    server.instance_id = request.instance_id or server.instance_id
    server.scaling_group = request.scaling_group or server.scaling_group
    server.enrolled_at = now
    server.gone_at = None
    server.gone_reason = ""
    # Not counted as live until its next report, which then recounts the fleet at once.
    server.silent_after = None
    server.save(update_fields=["token_hash", "enrolled_at", "gone_at", "gone_reason", "silent_after", *fields])
    after = {name: getattr(server, name) for name in fields} | {"gone": False}
    changed_before, changed_after = audit.diff(before, after)
    audit.record(
        None,
        ServerAudit.SERVER_ENROLLED,
        f"server {server.name}",
        changed_before,
        changed_after,
        f"enrolled again by host {server.host_id}" + (f" (it was gone: {was_gone})" if was_gone else ""),
        server,
    )
    return Enrolled(server, token, created=False)


def deregister(server: UploadServer, reason: str = "") -> bool:
    """The host shuts down in order: the server is gone at once (no silence, no alert)."""
    why = DEREGISTERED_REASON + (f": {reason}" if reason else "")
    return servers.mark_gone(server, why, ServerAudit.SERVER_DEREGISTERED)
