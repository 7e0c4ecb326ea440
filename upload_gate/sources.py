"""Where the gate reads `upload_limits` from: PostgreSQL, SQLite, or rows held in memory.

A source answers two questions, `max_version()` (cheap, asked on every poll) and
`read_snapshot()` (the whole table, only when the version moved). Sources are used by
one refresher thread at a time; they reconnect lazily after a failure.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from .table import (
    COLUMNS,
    MAX_VERSION,
    NOTIFY_CHANNEL,
    SELECT_MAX_VERSION_SQL,
    SELECT_ROWS_SQL,
    BadRow,
    LimitRow,
    TableSnapshot,
    parse_rows,
)


class SourceUnavailable(Exception):
    """The table could not be read (database down, file missing, simulated outage)."""


class Listener(Protocol):
    def wait(self, timeout_seconds: float) -> bool: ...

    def close(self) -> None: ...


class TableSource(Protocol):
    supports_notify: bool

    def max_version(self) -> int | None: ...

    def read_snapshot(self) -> TableSnapshot: ...

    def open_listener(self) -> Listener: ...

    def close(self) -> None: ...


class StaticSource:
    """Rows held in memory: for tests, the test vectors, and servers without a database."""

    supports_notify = False

    def __init__(self, rows: Iterable[LimitRow | Mapping[str, Any]] = ()) -> None:
        self._lock = threading.Lock()
        self._rows: list[LimitRow] = []
        self._bad_rows: list[BadRow] = []
        self.available = True
        self.set_rows(rows)

    def set_rows(self, rows: Iterable[LimitRow | Mapping[str, Any]]) -> None:
        """Rows are checked as a database's would be: one that cannot be parsed is kept as a
        bad row (the gate skips and names it), not raised here."""
        parsed, bad = parse_rows(rows)
        with self._lock:
            self._rows, self._bad_rows = parsed, bad

    def max_version(self) -> int | None:
        self._check_available()
        with self._lock:
            versions = [row.version for row in self._rows]
            versions += [bad.version for bad in self._bad_rows if bad.version is not None]
            return max(versions, default=None)

    def read_snapshot(self) -> TableSnapshot:
        self._check_available()
        with self._lock:
            return TableSnapshot.from_rows(self._rows, bad_rows=self._bad_rows)

    def open_listener(self) -> Listener:
        raise NotImplementedError("StaticSource has no notifications")

    def close(self) -> None:
        pass

    def _check_available(self) -> None:
        if not self.available:
            raise SourceUnavailable("static source switched off")


class _DatabaseSource:
    """What the SQLite and PostgreSQL sources share: the two reads and closing.
    Subclasses provide `_query(sql) -> rows`, raising SourceUnavailable."""

    _conn: Any = None

    def _query(self, sql: str) -> list[tuple]:
        raise NotImplementedError

    def max_version(self) -> int | None:
        value = self._query(SELECT_MAX_VERSION_SQL)[0][0]
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_VERSION:
            # Only a hand-written version can be text or out of range; such rows are skipped on read.
            return None
        return value

    def read_snapshot(self) -> TableSnapshot:
        return TableSnapshot.from_mappings(
            dict(zip(COLUMNS, values, strict=True)) for values in self._query(SELECT_ROWS_SQL)
        )

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # closing a broken connection must not raise further
                pass


class SqliteSource(_DatabaseSource):
    """A SQLite file, opened read-only; SQLite has no NOTIFY so the gate only polls."""

    supports_notify = False

    def __init__(self, path: str | Path, *, connect: Callable[[], Any] | None = None) -> None:
        self.path = Path(path)
        self._connect = connect or self._connect_read_only
        self._conn: Any = None

    def _connect_read_only(self) -> sqlite3.Connection:
        # mode=ro: an upload server must never create or write the table by accident.
        uri = self.path.resolve().as_uri() + "?mode=ro"
        return sqlite3.connect(uri, uri=True, timeout=1.0, check_same_thread=False, isolation_level=None)

    def _query(self, sql: str) -> list[tuple]:
        try:
            if self._conn is None:
                self._conn = self._connect()
            return list(self._conn.execute(sql).fetchall())
        except sqlite3.Error as exc:
            self.close()
            raise SourceUnavailable(f"sqlite {self.path}: {exc}") from exc

    def open_listener(self) -> Listener:
        raise NotImplementedError("SQLite has no notifications")


class PostgresSource(_DatabaseSource):
    """PostgreSQL through psycopg 3: autocommit reads, plus a LISTEN connection of its own."""

    supports_notify = True

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout_seconds: int = 2,
        connect: Callable[..., Any] | None = None,
    ) -> None:
        import psycopg  # only servers that use PostgreSQL need psycopg installed

        self._psycopg = psycopg
        self.dsn = dsn
        self.connect_timeout_seconds = connect_timeout_seconds
        self._connect = connect or psycopg.connect
        self._conn: Any = None

    def _open(self) -> Any:
        # autocommit: each poll sees the latest commit and no transaction stays open.
        return self._connect(self.dsn, autocommit=True, connect_timeout=self.connect_timeout_seconds)

    def _query(self, sql: str) -> list[tuple]:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._open()
            return list(self._conn.execute(sql).fetchall())
        except (self._psycopg.Error, OSError) as exc:
            self.close()
            raise SourceUnavailable(f"postgresql: {exc}") from exc

    def open_listener(self) -> PostgresListener:
        try:
            return PostgresListener(self._open(), self._psycopg)
        except (self._psycopg.Error, OSError) as exc:
            raise SourceUnavailable(f"postgresql listen: {exc}") from exc


class PostgresListener:
    """A dedicated autocommit connection that LISTENs; never used for queries (it would hang)."""

    def __init__(self, conn: Any, psycopg_module: Any) -> None:
        self._conn = conn
        self._psycopg = psycopg_module
        try:
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except Exception:
            conn.close()
            raise

    def wait(self, timeout_seconds: float) -> bool:
        """True if at least one notification arrived within the timeout."""
        try:
            for _notify in self._conn.notifies(timeout=timeout_seconds, stop_after=1):
                return True
        except (self._psycopg.Error, OSError) as exc:
            raise SourceUnavailable(f"postgresql listen: {exc}") from exc
        return False

    def close(self) -> None:
        try:
            self._conn.close()
        except Exception:  # closing a broken connection must not raise further
            pass


def source_from_url(database_url: str) -> TableSource:
    """postgres://... or postgresql://... -> PostgreSQL; sqlite:///path or a file path -> SQLite."""
    if database_url.startswith(("postgres://", "postgresql://")):
        return PostgresSource(database_url)
    if database_url.startswith("sqlite://"):
        # django-environ style: sqlite:////abs/path and sqlite:///relative/path
        return SqliteSource(database_url[len("sqlite://") :][1:] or ":memory:")
    if "://" in database_url:
        raise ValueError(f"unsupported database URL scheme: {database_url.split('://')[0]}")
    return SqliteSource(database_url)
