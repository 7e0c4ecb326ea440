"""The `upload_limits` table as the gate sees it: rows, parsing, and the SQL it runs.

The contract is docs/shared-config-table.md. PostgreSQL hands us native booleans and
aware datetimes; SQLite hands us 0/1 and naive UTC text ("YYYY-MM-DD HH:MM:SS[.ffffff]").
Both are normalised here so the rest of the gate never cares which database it read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .clock import UTC

DEFAULTS_CLIENT_ID = "*"

COLUMNS: tuple[str, ...] = (
    "client_id",
    "requests_per_minute",
    "burst",
    "max_concurrent_uploads",
    "max_bytes_in_flight",
    "daily_upload_bytes",
    "paused",
    "pause_reason",
    "resume_at",
    "priority",
    "version",
    "updated_at",
    "all_partners_paused",
    "all_partners_pause_reason",
    "all_partners_resume_at",
    "live_server_count",
    # Shadow limits (evaluated and counted, never enforced); nullable, added last.
    "shadow_requests_per_minute",
    "shadow_burst",
    "shadow_max_concurrent_uploads",
    "shadow_max_bytes_in_flight",
    "shadow_daily_upload_bytes",
    "reduced_limits",
)
SHADOW_COLUMNS = tuple(column for column in COLUMNS if column.startswith("shadow_"))

SELECT_MAX_VERSION_SQL = "SELECT max(version) FROM upload_limits"
SELECT_ROWS_SQL = "SELECT " + ", ".join(COLUMNS) + " FROM upload_limits"
NOTIFY_CHANNEL = "upload_limits"


@dataclass(frozen=True, slots=True)
class LimitRow:
    """One row of `upload_limits`, typed. Limits are fleet-wide; None means no limit."""

    client_id: str
    requests_per_minute: int | None = None
    burst: int | None = None
    max_concurrent_uploads: int | None = None
    max_bytes_in_flight: int | None = None
    daily_upload_bytes: int | None = None
    paused: bool = False
    pause_reason: str = ""
    resume_at: datetime | None = None
    priority: str = "interactive"
    version: int = 0
    updated_at: datetime | None = None
    all_partners_paused: bool = False
    all_partners_pause_reason: str = ""
    all_partners_resume_at: datetime | None = None
    live_server_count: int = 1
    shadow_requests_per_minute: int | None = None
    shadow_burst: int | None = None
    shadow_max_concurrent_uploads: int | None = None
    shadow_max_bytes_in_flight: int | None = None
    shadow_daily_upload_bytes: int | None = None
    # Limit columns the dashboard has lowered below the configured value because the fleet
    # is loaded (load-coupled limits); a rejection by one of them is a 503, not a 429.
    reduced_limits: frozenset[str] = frozenset()

    @property
    def has_shadow(self) -> bool:
        return any(getattr(self, column) is not None for column in SHADOW_COLUMNS)


@dataclass(frozen=True, slots=True)
class TableSnapshot:
    """A consistent copy of the whole table, as read in one go."""

    rows: Mapping[str, LimitRow]
    version: int
    live_server_count: int = 1
    from_fallback: bool = False
    defaults: LimitRow | None = field(default=None)

    @classmethod
    def from_rows(cls, rows: Iterable[LimitRow], *, from_fallback: bool = False) -> TableSnapshot:
        by_client = {row.client_id: row for row in rows}
        defaults = by_client.get(DEFAULTS_CLIENT_ID)
        # Every row's version counts: the max is what `SELECT max(version)` returns.
        version = max((row.version for row in by_client.values()), default=0)
        # The contract says at least 1; a 0 or negative count would divide by zero.
        live = max(1, defaults.live_server_count) if defaults is not None else 1
        return cls(by_client, version, live, from_fallback, defaults)


def parse_timestamp(value: Any) -> datetime | None:
    """timestamptz (aware datetime) or SQLite text (naive UTC) -> aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def parse_reduced_limits(value: Any) -> frozenset[str]:
    """`reduced_limits`: NULL or '' for none, else limit column names separated by commas."""
    if not value:
        return frozenset()
    return frozenset(name.strip() for name in str(value).split(",") if name.strip())


def row_from_mapping(values: Mapping[str, Any]) -> LimitRow:
    """Build a row from a column -> value mapping (a DB row, or a test vector's JSON)."""
    get = values.get
    return LimitRow(
        client_id=str(values["client_id"]),
        requests_per_minute=_optional_int(get("requests_per_minute")),
        burst=_optional_int(get("burst")),
        max_concurrent_uploads=_optional_int(get("max_concurrent_uploads")),
        max_bytes_in_flight=_optional_int(get("max_bytes_in_flight")),
        daily_upload_bytes=_optional_int(get("daily_upload_bytes")),
        paused=bool(get("paused") or False),
        pause_reason=str(get("pause_reason") or ""),
        resume_at=parse_timestamp(get("resume_at")),
        priority=str(get("priority") or "interactive"),
        version=int(get("version") or 0),
        updated_at=parse_timestamp(get("updated_at")),
        all_partners_paused=bool(get("all_partners_paused") or False),
        all_partners_pause_reason=str(get("all_partners_pause_reason") or ""),
        all_partners_resume_at=parse_timestamp(get("all_partners_resume_at")),
        live_server_count=int(get("live_server_count") or 1),
        **{column: _optional_int(get(column)) for column in SHADOW_COLUMNS},
        reduced_limits=parse_reduced_limits(get("reduced_limits")),
    )


def row_from_tuple(values: tuple) -> LimitRow:
    """A row as returned by SELECT_ROWS_SQL (columns in COLUMNS order)."""
    return row_from_mapping(dict(zip(COLUMNS, values, strict=True)))


def fallback_row(fallback: Mapping[str, Any] | LimitRow | None) -> LimitRow:
    """The limits in force before the first successful load (per server, not shared)."""
    if isinstance(fallback, LimitRow):
        values = {name: getattr(fallback, name) for name in LimitRow.__dataclass_fields__}
    else:
        values = dict(fallback or {})
    values.update(client_id=DEFAULTS_CLIENT_ID, live_server_count=1, version=0)
    return row_from_mapping(values)
