"""Reading `upload_limits` from SQLite: parsing, polling, failing static, zero queries per decision."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime

from tests.factories import create_sqlite_table, insert_sqlite_row
from upload_gate import PostgresSource, SqliteSource, UploadGate, source_from_url
from upload_gate.table import parse_timestamp


def wait_until(predicate, timeout_seconds: float = 10.0) -> bool:
    """Poll a condition; a generous timeout guards the test, it is not what is asserted."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_it_reads_sqlite_booleans_and_utc_text_timestamps(tmp_path, make_gate):
    db = tmp_path / "app.sqlite3"
    create_sqlite_table(db)
    insert_sqlite_row(db, client_id="*", max_concurrent_uploads=2, live_server_count=1)
    insert_sqlite_row(
        db,
        client_id="p",
        paused=1,
        pause_reason="paused",
        resume_at="2025-03-10 12:00:30.500000",
        priority="bulk",
        version=2,
    )
    gate = make_gate(source=SqliteSource(db))
    assert gate.config_version == 2
    decision = gate.admit("p", 1)
    assert (decision.status, decision.retry_after_seconds) == (503, 31)  # 30.5 s, rounded up
    assert gate.client_config("p")["priority"] == "bulk"


def test_sqlite_and_postgres_timestamps_mean_the_same_instant():
    aware = datetime(2025, 3, 10, 12, 0, 30, 500000, tzinfo=UTC)
    assert parse_timestamp("2025-03-10 12:00:30.500000") == aware
    assert parse_timestamp("2025-03-10 12:00:30.5+00:00") == aware
    assert parse_timestamp(aware) == aware
    assert parse_timestamp(None) is None


def test_it_reloads_when_max_version_moves_and_only_then(tmp_path, make_gate):
    db = tmp_path / "app.sqlite3"
    create_sqlite_table(db)
    insert_sqlite_row(db, client_id="*", max_concurrent_uploads=1)
    gate = make_gate(source=SqliteSource(db))
    gate.refresh_now()
    assert gate.refresher.stats["reloads"] == 1
    insert_sqlite_row(db, client_id="*", max_concurrent_uploads=2, version=2)
    gate.refresh_now()
    assert gate.config_version == 2 and gate.refresher.stats["reloads"] == 2
    assert gate.admit("c", 1).admitted and gate.admit("c", 1).admitted


def test_a_deleted_partner_row_is_seen_through_the_star_version(tmp_path, make_gate):
    db = tmp_path / "app.sqlite3"
    create_sqlite_table(db)
    insert_sqlite_row(db, client_id="*", max_concurrent_uploads=1)
    insert_sqlite_row(db, client_id="p", max_concurrent_uploads=9, version=2)
    gate = make_gate(source=SqliteSource(db))
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM upload_limits WHERE client_id = 'p'")
        conn.execute("UPDATE upload_limits SET version = 3 WHERE client_id = '*'")
    gate.refresh_now()
    assert gate.client_config("p")["has_row"] is False


def test_the_background_poller_applies_a_change_without_being_asked(tmp_path, make_gate):
    db = tmp_path / "app.sqlite3"
    create_sqlite_table(db)
    insert_sqlite_row(db, client_id="*", max_concurrent_uploads=1)
    gate = make_gate(source=SqliteSource(db), start=True, poll_interval_seconds=0.05)
    insert_sqlite_row(db, client_id="*", max_concurrent_uploads=5, version=7)
    assert wait_until(lambda: gate.config_version == 7)


def test_a_missing_database_means_fallback_limits_and_a_stale_since(tmp_path, make_gate, clock):
    gate = make_gate(source=SqliteSource(tmp_path / "absent.sqlite3"), fallback_limits={"max_concurrent_uploads": 1})
    assert gate.config_version is None and gate.stale_since == clock.now()
    assert "unable to open" in gate.refresher.last_error
    assert [gate.admit("c", 1).admitted for _ in range(2)] == [True, False]


def test_the_last_good_copy_survives_the_table_becoming_unreadable(tmp_path, make_gate):
    db = tmp_path / "app.sqlite3"
    create_sqlite_table(db)
    insert_sqlite_row(db, client_id="*", max_concurrent_uploads=1)
    gate = make_gate(source=SqliteSource(db))
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE upload_limits RENAME TO upload_limits_moved")
    assert gate.refresh_now() is False
    assert gate.stale_since is not None and gate.config_version == 1
    assert [gate.admit("c", 1).admitted for _ in range(2)] == [True, False]
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE upload_limits_moved RENAME TO upload_limits")
    insert_sqlite_row(db, client_id="*", max_concurrent_uploads=3, version=2)
    assert gate.refresh_now() is True
    assert gate.stale_since is None and gate.config_version == 2


class CountingConnection:
    """Wraps a DB-API connection and counts statements per thread."""

    def __init__(self, conn):
        self._conn = conn
        self.by_thread: dict[int, int] = {}

    def execute(self, sql, *args):
        ident = threading.get_ident()
        self.by_thread[ident] = self.by_thread.get(ident, 0) + 1
        return self._conn.execute(sql, *args)

    def close(self):
        self._conn.close()


def test_decisions_make_no_database_queries(tmp_path):
    db = tmp_path / "app.sqlite3"
    create_sqlite_table(db)
    insert_sqlite_row(db, client_id="*", requests_per_minute=6000, burst=100, max_concurrent_uploads=10)
    counting = CountingConnection(sqlite3.connect(db, check_same_thread=False))
    gate = UploadGate(source=SqliteSource(db, connect=lambda: counting), start=False)
    before = counting.by_thread.get(threading.get_ident(), 0)
    assert before == 2  # the first load: max(version), then the rows
    for _ in range(1000):
        decision = gate.admit("c", 10)
        if decision.admitted:
            gate.release(decision.lease)
    gate.snapshot_counters()
    assert counting.by_thread.get(threading.get_ident(), 0) == before
    gate.close()


def test_database_urls_choose_the_source():
    assert isinstance(source_from_url("sqlite:////var/db/app.sqlite3"), SqliteSource)
    assert str(source_from_url("sqlite:////var/db/app.sqlite3").path) == "/var/db/app.sqlite3"
    assert isinstance(source_from_url("/tmp/app.sqlite3"), SqliteSource)
    assert isinstance(source_from_url("postgres://u@127.0.0.1:5432/app"), PostgresSource)
    assert isinstance(source_from_url("postgresql://u@127.0.0.1:5432/app"), PostgresSource)
