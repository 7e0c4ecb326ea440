"""The `upload_limits` table as the gate sees it: rows, parsing, and the SQL it runs.

The contract is docs/shared-config-table.md. PostgreSQL hands us native booleans and
aware datetimes; SQLite hands us 0/1 and naive UTC text ("YYYY-MM-DD HH:MM:SS[.ffffff]").
Both are normalised here so the rest of the gate never cares which database it read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
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
LIMIT_COLUMNS = ("requests_per_minute", "burst", "max_concurrent_uploads", "max_bytes_in_flight", "daily_upload_bytes")
BIGINT_COLUMNS = frozenset(
    ("max_bytes_in_flight", "daily_upload_bytes", "shadow_max_bytes_in_flight", "shadow_daily_upload_bytes")
)
PRIORITY_INTERACTIVE = "interactive"
PRIORITIES = (PRIORITY_INTERACTIVE, "bulk")
MAX_CLIENT_ID_CHARS = 255
MAX_INTEGER = 2**31 - 1  # PostgreSQL integer
MAX_BIGINT = 2**63 - 1  # PostgreSQL bigint
# The publisher's counter adds one per change: 10^15 is out of its reach for millennia, so a
# larger version is hand-written and would hide every later change behind it. It is also
# below 2^53 (exact in JavaScript numbers) and a valid Structured Fields integer.
MAX_VERSION = 10**15 - 1

# Before the first successful read, and for clients without a row while the table has no
# `*` row: a gate never runs unlimited because of bad or missing data unless ops pass
# fallback_limits={} (docs/shared-config-table.md, "Bad data"). Per server, not divided.
DEFAULT_FALLBACK_LIMITS: Mapping[str, int] = {"requests_per_minute": 60, "burst": 10, "max_concurrent_uploads": 4}

MISSING_DEFAULTS_PROBLEM = "no `*` row: clients without a row keep the last `*` row read, else the fallback limits"

# Rows with a version above MAX_VERSION are bad rows: they must not hide the real maximum.
SELECT_MAX_VERSION_SQL = f"SELECT max(version) FROM upload_limits WHERE version <= {MAX_VERSION}"
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
    # Rows skipped because they cannot be parsed; a missing `*` row is named here too.
    bad_rows: tuple[BadRow, ...] = ()

    @classmethod
    def from_rows(
        cls, rows: Iterable[LimitRow], *, from_fallback: bool = False, bad_rows: Iterable[BadRow] = ()
    ) -> TableSnapshot:
        by_client = {row.client_id: row for row in rows}
        bad = tuple(bad_rows)
        defaults = by_client.get(DEFAULTS_CLIENT_ID)
        # Every row's version counts, a skipped row's too: the max is what
        # `SELECT max(version)` returns, so a bad row does not cause a reload on every poll.
        versions = [row.version for row in by_client.values()] + [b.version for b in bad if b.version is not None]
        version = max(versions, default=0)
        # The contract says at least 1; a 0 count would divide by zero.
        live = max(1, defaults.live_server_count) if defaults is not None else 1
        if defaults is None and not from_fallback and not any(b.client_id == DEFAULTS_CLIENT_ID for b in bad):
            bad += (
                BadRow(
                    DEFAULTS_CLIENT_ID,
                    "client_id",
                    "no `*` row: clients without a row keep the last `*` row read, else get the fallback limits",
                ),
            )
        return cls(by_client, version, live, from_fallback, defaults, bad)

    @classmethod
    def from_mappings(cls, mappings: Iterable[Mapping[str, Any] | LimitRow]) -> TableSnapshot:
        rows, bad = parse_rows(mappings)
        return cls.from_rows(rows, bad_rows=bad)

    def keeping_last_good(self, previous: TableSnapshot | None) -> TableSnapshot:
        """This snapshot, with each skipped row (and a missing `*` row) replaced by that
        client's row in the previous snapshot, when there was one: a typo in a row must not
        lift the limits it held. Without one, the client gets the `*` row (or the fallback)."""
        if not self.bad_rows or previous is None or previous.from_fallback:
            return self
        carried = {
            bad.client_id: previous.rows[bad.client_id]
            for bad in self.bad_rows
            if bad.client_id in previous.rows and bad.client_id not in self.rows
        }
        if not carried:
            return self
        merged = TableSnapshot.from_rows([*self.rows.values(), *carried.values()], bad_rows=self.bad_rows)
        return replace(merged, version=self.version)


class BadRow(ValueError):
    """A row of `upload_limits` that cannot be parsed: which row, which column, what is wrong.

    The gate skips such a row and names it (log, status report); the rest of the table applies.
    `version` is the row's version when that column itself was readable, so the gate does not
    re-read the whole table on every poll because of a row it has already seen and skipped.
    """

    def __init__(self, client_id: str, column: str, problem: str, version: int | None = None) -> None:
        super().__init__(f"upload_limits row {client_id!r}, column {column}: {problem}")
        self.client_id = client_id
        self.column = column
        self.problem = problem
        self.version = version

    def as_dict(self) -> dict[str, str]:
        return {"client_id": self.client_id, "column": self.column, "problem": self.problem}


class _BadValue(ValueError):
    def __init__(self, column: str, problem: str) -> None:
        super().__init__(problem)
        self.column = column
        self.problem = problem


def parse_timestamp(value: Any) -> datetime | None:
    """timestamptz (aware datetime) or SQLite text (naive UTC) -> aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _timestamp(column: str, value: Any) -> datetime | None:
    try:
        return parse_timestamp(value)
    except ValueError:
        raise _BadValue(column, f"not a timestamp: {value!r}") from None


def _integer(column: str, value: Any, maximum: int) -> int:
    # bool is an int in Python; 4.5 (a SQLite REAL) and '5' (TEXT) are not integers either.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _BadValue(column, f"not an integer: {value!r}")
    if value < 0:
        raise _BadValue(column, f"negative: {value}")
    if value > maximum:
        raise _BadValue(column, f"above {maximum}: {value}")
    return value


def _limit(column: str, value: Any) -> int | None:
    if value is None:
        return None
    return _integer(column, value, MAX_BIGINT if column in BIGINT_COLUMNS else MAX_INTEGER)


def _boolean(column: str, value: Any) -> bool:
    """PostgreSQL booleans, or SQLite's 0 / 1; text such as 'false' is not a boolean."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _BadValue(column, f"not a boolean (true/false, or 0/1 on SQLite): {value!r}")


def _text(column: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _BadValue(column, f"not text: {value!r}")
    return value


def _priority(value: Any) -> str:
    if value is None:
        return PRIORITY_INTERACTIVE
    if value not in PRIORITIES:
        raise _BadValue("priority", f"not one of {', '.join(PRIORITIES)}: {value!r}")
    return value


def parse_reduced_limits(value: Any) -> frozenset[str]:
    """`reduced_limits`: NULL or '' for none, else limit column names separated by commas
    (a list, set or frozenset of names too: LimitRow's own type, for rows held in memory)."""
    if not value:
        return frozenset()
    if isinstance(value, str):
        names = [name.strip() for name in value.split(",") if name.strip()]
    elif isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(name, str) for name in value):
        names = [name.strip() for name in value]
    else:
        raise _BadValue("reduced_limits", f"not a comma-separated list of limit columns: {value!r}")
    unknown = sorted(set(names) - set(LIMIT_COLUMNS))
    if unknown:
        raise _BadValue("reduced_limits", f"not limit columns: {', '.join(unknown)}")
    return frozenset(names)


def _client_id(values: Mapping[str, Any]) -> str:
    client_id = values.get("client_id")
    if not isinstance(client_id, str) or not client_id or len(client_id) > MAX_CLIENT_ID_CHARS:
        raise BadRow(repr(client_id), "client_id", f"not a client id (text of 1 to {MAX_CLIENT_ID_CHARS} characters)")
    return client_id


def row_from_mapping(values: Mapping[str, Any]) -> LimitRow:
    """Build a row from a column -> value mapping (a DB row, or a test vector's JSON).

    Raises BadRow naming the first column that cannot be parsed (docs/shared-config-table.md,
    "Bad data"). A column left out of the mapping reads as NULL; a NOT NULL column left out
    reads as its default (rows held in memory by tests leave them out).
    """
    client_id = _client_id(values)
    version: int | None = None
    get = values.get
    try:
        version = _integer("version", get("version") or 0, MAX_VERSION)
        live = _integer(
            "live_server_count", 1 if get("live_server_count") is None else get("live_server_count"), MAX_INTEGER
        )
        return LimitRow(
            client_id=client_id,
            **{column: _limit(column, get(column)) for column in LIMIT_COLUMNS + SHADOW_COLUMNS},
            paused=_boolean("paused", get("paused")),
            pause_reason=_text("pause_reason", get("pause_reason")),
            resume_at=_timestamp("resume_at", get("resume_at")),
            priority=_priority(get("priority")),
            version=version,
            updated_at=_timestamp("updated_at", get("updated_at")),
            all_partners_paused=_boolean("all_partners_paused", get("all_partners_paused")),
            all_partners_pause_reason=_text("all_partners_pause_reason", get("all_partners_pause_reason")),
            all_partners_resume_at=_timestamp("all_partners_resume_at", get("all_partners_resume_at")),
            live_server_count=live,
            reduced_limits=parse_reduced_limits(get("reduced_limits")),
        )
    except _BadValue as bad:
        raise BadRow(client_id, bad.column, bad.problem, version) from None


def row_from_tuple(values: tuple) -> LimitRow:
    """A row as returned by SELECT_ROWS_SQL (columns in COLUMNS order)."""
    return row_from_mapping(dict(zip(COLUMNS, values, strict=True)))


def row_as_mapping(row: LimitRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in LimitRow.__dataclass_fields__}


def parse_rows(mappings: Iterable[Mapping[str, Any] | LimitRow]) -> tuple[list[LimitRow], list[BadRow]]:
    """Every row that parses, and every one that does not (each named, none fatal)."""
    rows: list[LimitRow] = []
    bad: list[BadRow] = []
    for values in mappings:
        try:
            rows.append(row_from_mapping(row_as_mapping(values) if isinstance(values, LimitRow) else values))
        except BadRow as problem:
            bad.append(problem)
    return rows, bad


def fallback_row(fallback: Mapping[str, Any] | LimitRow | None) -> LimitRow:
    """The limits in force before the first successful load, and for clients without a row
    while the table has no `*` row (per server, not shared). None means the safe defaults."""
    if isinstance(fallback, LimitRow):
        values = row_as_mapping(fallback)
    else:
        values = dict(DEFAULT_FALLBACK_LIMITS if fallback is None else fallback)
    values.update(client_id=DEFAULTS_CLIENT_ID, live_server_count=1, version=0)
    try:
        return row_from_mapping(values)
    except BadRow as bad:  # a configuration error: refuse to start, naming the key
        raise ValueError(f"fallback_limits[{bad.column!r}]: {bad.problem}") from None
