"""Status reports from upload servers: validation and storage (docs/status-report.md).

A report costs a handful of queries: the token lookup, one conditional upsert of the boot's
highest sequence (which drops a retried or replayed report), one UPDATE of the server, one
INSERT, and the live-server count.
"""

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from core.bounds import BIGINT_MAX, INT32_MAX
from monitoring import servers
from monitoring.models import ServerBoot, ServerReport, UploadServer, hash_token

MAX_REPORT_BYTES = 256 * 1024
LIVE_COUNT_CHECK_SECONDS = 5
MAX_CLIENTS_PER_REPORT = 5000
MAX_INTERVAL_SECONDS = 3600
CLIENT_COUNTERS = ("admitted", "throttled", "timed_out", "completed", "failed")
CLIENT_GAUGES = ("uploads_in_progress", "bytes_in_flight")
CLIENT_FIELDS = CLIENT_GAUGES + CLIENT_COUNTERS
# Optional per client: stored only when sent (servers send it for clients with shadow limits).
CLIENT_OPTIONAL_COUNTERS = ("would_have_throttled",)
# Matched whole (fullmatch): with `$`, an id with a trailing newline would pass.
CLIENT_ID_RE = re.compile(r"(\*|[A-Za-z0-9][A-Za-z0-9._:@-]{0,254})")
SERVER_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
BOOT_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# RFC 3339, as the reporter writes it ("2026-11-28T09:12:03.123Z"); informational only.
SENT_AT_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", re.IGNORECASE)
MAX_SENT_AT_CHARS = 40
MAX_COUNT = INT32_MAX
MAX_BYTES = BIGINT_MAX
MAX_BAD_ROWS = 100
BAD_ROW_FIELD_CHARS = {"client_id": 300, "column": 64, "problem": 300}


class InvalidReport(ValueError):
    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


@dataclass
class Report:
    server_id: str
    sequence: int
    cpu_percent: float
    config_version: int
    interval_seconds: int = 5
    boot_id: str = ""
    clients: dict[str, dict[str, int]] = field(default_factory=dict)
    bad_rows: list[dict[str, str]] = field(default_factory=list)

    def total(self, name: str) -> int:
        return sum(stats.get(name, 0) for stats in self.clients.values())


def parse_report(body: bytes) -> Report:
    """Parse and check a report body; raise InvalidReport naming every field that is wrong."""
    data = _json_object(body)
    if not isinstance(data, dict):
        raise InvalidReport({"body": "must be a JSON object"})
    errors: dict[str, str] = {}
    unknown = set(data) - {
        "server_id",
        "sequence",
        "cpu_percent",
        "config_version",
        "interval_seconds",
        "boot_id",
        "clients",
        "sent_at",
        "bad_rows",
    }
    for name in sorted(unknown):
        errors[name] = "unknown field"
    _check_sent_at(data.get("sent_at"), errors)
    report = Report(
        server_id=_string(data, "server_id", SERVER_ID_RE, errors, required=True),
        sequence=_integer(data, "sequence", errors, required=True, maximum=2**62),
        cpu_percent=_percent(data, "cpu_percent", errors),
        config_version=_integer(data, "config_version", errors, required=True, maximum=2**62),
        interval_seconds=_integer(data, "interval_seconds", errors, default=5, minimum=1, maximum=MAX_INTERVAL_SECONDS),
        boot_id=_string(data, "boot_id", BOOT_ID_RE, errors, required=False),
        clients=_clients(data.get("clients", {}), errors),
        bad_rows=_bad_rows(data.get("bad_rows", []), errors),
    )
    _check_totals(report, errors)
    if errors:
        raise InvalidReport(errors)
    return report


class _DuplicateKey(ValueError):
    pass


def _refuse_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    data = {}
    for key, value in pairs:
        if key in data:
            raise _DuplicateKey(f"the key {key!r} appears twice in one object")
        data[key] = value
    return data


def _json_object(body: bytes):
    """The body as JSON: UTF-8 only (json.loads would guess UTF-16 or UTF-32), no key twice in
    one object (which value counts would be a guess), and nesting deep enough to blow the
    parser's stack is a refusal like any other malformed body."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidReport({"body": f"not UTF-8 ({error.reason} at byte {error.start})"}) from error
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicate_keys)
    except RecursionError as error:
        raise InvalidReport({"body": "JSON nested too deeply (a report nests objects three deep)"}) from error
    except _DuplicateKey as error:
        raise InvalidReport({"body": str(error)}) from error
    except ValueError as error:
        raise InvalidReport({"body": f"not valid JSON ({error})"}) from error


def _check_sent_at(value, errors: dict[str, str]) -> None:
    if value is None:
        return
    if not isinstance(value, str) or len(value) > MAX_SENT_AT_CHARS or not SENT_AT_RE.fullmatch(value):
        errors["sent_at"] = "must be an RFC 3339 date-time string such as 2026-11-28T09:12:03.123Z"
        return
    try:
        # fromisoformat takes at most six fractional digits; the date's own ranges are what matter.
        datetime.fromisoformat(re.sub(r"\.(\d{6})\d+", r".\1", value.upper().replace("Z", "+00:00")))
    except ValueError:
        errors["sent_at"] = "not a real date and time"


def _check_totals(report: Report, errors: dict[str, str]) -> None:
    """The report's totals are stored in columns of the same ranges as one client's figures."""
    for name in CLIENT_FIELDS + CLIENT_OPTIONAL_COUNTERS:
        maximum = MAX_BYTES if name == "bytes_in_flight" else MAX_COUNT
        if report.total(name) > maximum:
            errors[f"clients.*.{name}"] = f"the sum over all clients must be at most {maximum}"


def _string(data, name, pattern, errors, required: bool) -> str:
    value = data.get(name)
    if value is None:
        if required:
            errors[name] = "required"
        return ""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        errors[name] = f"must be a string matching ^{pattern.pattern}$"
        return ""
    return value


def _integer(data, name, errors, required=False, default=0, minimum=0, maximum=MAX_COUNT) -> int:
    if name not in data:
        if required:
            errors[name] = "required"
        return default
    return _checked_integer(data[name], name, errors, minimum, maximum)


def _checked_integer(value, name, errors, minimum=0, maximum=MAX_COUNT) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        errors[name] = "must be an integer"
        return 0
    if not minimum <= value <= maximum:
        errors[name] = f"must be between {minimum} and {maximum}"
        return 0
    return value


def _percent(data, name, errors) -> float:
    value = data.get(name)
    if value is None:
        errors[name] = "required"
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        errors[name] = "must be a number"
        return 0.0
    if not 0 <= value <= 100:
        errors[name] = "must be between 0 and 100 (percent of all cores)"
        return 0.0
    return float(value)


def _clients(clients, errors) -> dict[str, dict[str, int]]:
    if not isinstance(clients, dict):
        errors["clients"] = "must be an object keyed by client id"
        return {}
    if len(clients) > MAX_CLIENTS_PER_REPORT:
        errors["clients"] = f"at most {MAX_CLIENTS_PER_REPORT} client ids per report"
        return {}
    checked = {}
    for client_id, stats in clients.items():
        prefix = f"clients.{client_id}"
        if not CLIENT_ID_RE.fullmatch(client_id):
            errors[prefix] = "not a valid client id"
            continue
        if not isinstance(stats, dict):
            errors[prefix] = "must be an object of counts"
            continue
        for name in sorted(set(stats) - set(CLIENT_FIELDS) - set(CLIENT_OPTIONAL_COUNTERS)):
            errors[f"{prefix}.{name}"] = "unknown field"
        checked[client_id] = {
            name: _checked_integer(
                stats.get(name, 0),
                f"{prefix}.{name}",
                errors,
                maximum=MAX_BYTES if name == "bytes_in_flight" else MAX_COUNT,
            )
            for name in CLIENT_FIELDS
        }
        for name in CLIENT_OPTIONAL_COUNTERS:
            if name in stats:
                checked[client_id][name] = _checked_integer(stats[name], f"{prefix}.{name}", errors)
    return checked


def _bad_rows(bad_rows, errors) -> list[dict[str, str]]:
    """The table rows the server's gate skipped: a list of {client_id, column, problem}."""
    if not isinstance(bad_rows, list) or len(bad_rows) > MAX_BAD_ROWS:
        errors["bad_rows"] = f"must be a list of at most {MAX_BAD_ROWS} objects"
        return []
    for index, bad in enumerate(bad_rows):
        if not isinstance(bad, dict) or set(bad) != set(BAD_ROW_FIELD_CHARS):
            errors[f"bad_rows.{index}"] = f"must be an object with exactly {', '.join(BAD_ROW_FIELD_CHARS)}"
            continue
        for name, chars in BAD_ROW_FIELD_CHARS.items():
            if not isinstance(bad[name], str) or len(bad[name]) > chars:
                errors[f"bad_rows.{index}.{name}"] = f"must be a string of at most {chars} characters"
    return bad_rows


_AUTHENTICATE_SQL = (
    f"SELECT id, name, token_hash, silent_after FROM {UploadServer._meta.db_table} "
    "WHERE token_hash = %s AND revoked_at IS NULL AND gone_at IS NULL"
)


def authenticate(authorization_header: str) -> UploadServer | None:
    """The server whose token is in `Authorization: Bearer <token>`, unless revoked or gone."""
    scheme, _, token = (authorization_header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    servers = UploadServer.objects.raw(_AUTHENTICATE_SQL, [hash_token(token.strip())])
    server = next(iter(servers), None)
    # The lookup is by hash; compare once more in constant time before trusting it.
    return server if server is not None and server.token_matches(token.strip()) else None


# The ingest hot path is two statements written out by hand: at 500 reports/s on two cores a
# request has about 2 ms, and building these queries through the ORM took a third of it.
_SERVER_TABLE = UploadServer._meta.db_table
_REPORT_TABLE = ServerReport._meta.db_table
_BOOT_TABLE = ServerBoot._meta.db_table
# A retry or replay repeats its boot and sequence: only a sequence above the highest seen from
# that boot (or a boot not seen before) claims it, whichever boot the server is on now.
_CLAIM_SQL = (
    f"INSERT INTO {_BOOT_TABLE} (server_id, boot_id, last_sequence, last_seen_at) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (server_id, boot_id) DO UPDATE SET last_sequence = excluded.last_sequence, "
    f"last_seen_at = excluded.last_seen_at WHERE {_BOOT_TABLE}.last_sequence < excluded.last_sequence"
)
_SERVER_SQL = (
    f"UPDATE {_SERVER_TABLE} SET boot_id = %s, last_sequence = %s, last_seen_at = %s, silent_after = %s, "
    "report_interval_seconds = %s, last_cpu_percent = %s, last_config_version = %s, "
    "last_uploads_in_progress = %s, last_bytes_in_flight = %s, last_bad_rows = %s WHERE id = %s"
)
_REPORT_COLUMNS = (
    "server_id",
    "sequence",
    "received_at",
    "interval_seconds",
    "cpu_percent",
    "config_version",
    "uploads_in_progress",
    "bytes_in_flight",
    *CLIENT_COUNTERS,
    "clients",
    *CLIENT_OPTIONAL_COUNTERS,
)
_INSERT_SQL = (
    f"INSERT INTO {_REPORT_TABLE} ({', '.join(_REPORT_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_REPORT_COLUMNS))})"
)


def store_report(server: UploadServer, report: Report, now=None) -> bool:
    """Store a report; False when it is a retry of one already stored (same boot, sequence)."""
    now = now or timezone.now()
    was_counted = not server.is_silent(now)
    at = connection.ops.adapt_datetimefield_value(now)
    uploads, bytes_in_flight = report.total("uploads_in_progress"), report.total("bytes_in_flight")
    silent_after = connection.ops.adapt_datetimefield_value(UploadServer.silent_after_for(now, report.interval_seconds))
    clients = ServerReport._meta.get_field("clients").get_db_prep_value(report.clients, connection)
    bad_rows = UploadServer._meta.get_field("last_bad_rows").get_db_prep_value(report.bad_rows, connection)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, [server.pk, report.boot_id, report.sequence, at])
        if cursor.rowcount != 1:
            return False
        cursor.execute(
            _SERVER_SQL,
            [
                report.boot_id,
                report.sequence,
                at,
                silent_after,
                report.interval_seconds,
                report.cpu_percent,
                report.config_version,
                uploads,
                bytes_in_flight,
                bad_rows,
                server.pk,
            ],
        )
        cursor.execute(
            _INSERT_SQL,
            [
                server.pk,
                report.sequence,
                at,
                report.interval_seconds,
                report.cpu_percent,
                report.config_version,
                uploads,
                bytes_in_flight,
                *(report.total(name) for name in CLIENT_COUNTERS),
                clients,
                *(report.total(name) for name in CLIENT_OPTIONAL_COUNTERS),
            ],
        )
    if not was_counted or _live_count_check_due(now):
        # A new or returning server changes the live count at once. One that went silent is
        # noticed here within a few seconds while other servers report (and by the
        # every-minute job, monitoring.tasks.count_live_servers, when none do).
        servers.count_live_servers(now)
    return True


_next_live_count_check = {"at": None}


def _live_count_check_due(now) -> bool:
    """At most one recount per LIVE_COUNT_CHECK_SECONDS per process: cheap, and enough."""
    due_at = _next_live_count_check["at"]
    if due_at is not None and now < due_at:
        return False
    _next_live_count_check["at"] = now + timedelta(seconds=LIVE_COUNT_CHECK_SECONDS)
    return True
