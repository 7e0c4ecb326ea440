"""Bad data in `upload_limits`: a row that cannot be parsed is skipped and named, the rest of
the table applies, and nothing bad data does leaves a client unlimited
(docs/shared-config-table.md, "Bad data")."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

import pytest

from tests.factories import create_sqlite_table, insert_sqlite_row, star_row
from upload_gate import LIMIT_CONCURRENCY, SourceUnavailable, SqliteSource, StaticSource
from upload_gate.table import DEFAULT_FALLBACK_LIMITS, MAX_VERSION


def sqlite_table(tmp_path, *rows: dict):
    db = tmp_path / "app.sqlite3"
    create_sqlite_table(db)
    for values in rows:
        insert_sqlite_row(db, **values)
    return db


def admitted_in_a_row(gate, client_id: str, attempts: int = 10) -> int:
    """How many uploads of client_id are admitted back to back (none released)."""
    return sum(gate.admit(client_id, 1).admitted for _ in range(attempts))


def test_a_gate_started_with_an_unparseable_row_applies_the_rest_and_names_the_row(tmp_path, make_gate, caplog):
    db = sqlite_table(
        tmp_path,
        {"client_id": "*", "max_concurrent_uploads": 1},
        {"client_id": "p", "paused": "false", "version": 2},
        {"client_id": "q", "max_concurrent_uploads": 3, "version": 3},
    )
    with caplog.at_level(logging.WARNING, logger="upload_gate"):
        gate = make_gate(source=SqliteSource(db))
    assert gate.loaded and gate.config_version == 3 and gate.stale_since is None
    assert gate.bad_rows == [{"client_id": "p", "column": "paused", "problem": gate.bad_rows[0]["problem"]}]
    assert "'false'" in gate.bad_rows[0]["problem"]
    # The skipped row's client falls back to the `*` row, the others keep their own rows.
    assert admitted_in_a_row(gate, "p") == 1
    assert admitted_in_a_row(gate, "q") == 3
    assert admitted_in_a_row(gate, "direct-user") == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("'p'" in message and "paused" in message for message in warnings), warnings
    assert not any("unreachable" in message for message in warnings)
    assert gate.snapshot_counters()["bad_rows"] == gate.bad_rows


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("paused", "false"),  # text in a boolean column: it used to mean paused
        ("requests_per_minute", 4.5),  # a REAL: it used to become 4
        ("max_concurrent_uploads", -1),  # it used to become 0 (every upload rejected)
        ("requests_per_minute", -60),  # it used to answer Retry-After 60
        ("daily_upload_bytes", "lots"),
        ("priority", "urgent"),
        ("reduced_limits", "max_concurrent_uploads,max_uploads_in_flight"),
        ("version", 10**15),  # hand-written: it used to hide every later change
        ("version", -1),
        ("live_server_count", -3),
        ("resume_at", "tomorrow"),
    ],
)
def test_each_kind_of_bad_value_skips_its_row_and_names_the_column(tmp_path, make_gate, column, value):
    db = sqlite_table(
        tmp_path,
        {"client_id": "*", "max_concurrent_uploads": 2},
        {"client_id": "p", "max_concurrent_uploads": 9, column: value},
    )
    gate = make_gate(source=SqliteSource(db))
    assert [(bad["client_id"], bad["column"]) for bad in gate.bad_rows] == [("p", column)]
    assert gate.client_config("p")["has_row"] is False
    assert admitted_in_a_row(gate, "p") == 2  # the `*` row's limits, not the bad row's 9


def test_a_row_that_turns_bad_keeps_the_limits_it_had(tmp_path, make_gate):
    db = sqlite_table(tmp_path, {"client_id": "*"}, {"client_id": "p", "max_concurrent_uploads": 2, "version": 2})
    gate = make_gate(source=SqliteSource(db))
    insert_sqlite_row(db, client_id="p", max_concurrent_uploads=2, burst=4.5, version=3)
    assert gate.refresh_now() and gate.config_version == 3
    assert [bad["column"] for bad in gate.bad_rows] == ["burst"]
    # Not the `*` row (no limits at all): the last good copy of p's own row.
    assert admitted_in_a_row(gate, "p") == 2


def test_the_fixed_row_applies_on_the_next_poll_without_a_backoff(tmp_path, make_gate):
    db = sqlite_table(tmp_path, {"client_id": "*"}, {"client_id": "p", "max_concurrent_uploads": 1.5, "version": 2})
    gate = make_gate(source=SqliteSource(db), poll_interval_seconds=1.0)
    for _ in range(40):  # forty polls with the bad row: none of them a failure
        assert gate.refresh_now()
    assert gate.refresher.stats["failures"] == 0 and gate.refresher.next_wait_seconds() == 1.0
    assert gate.refresher.stats["reloads"] == 1  # the bad row's version counts: no reload per poll
    insert_sqlite_row(db, client_id="p", max_concurrent_uploads=1, version=3)
    assert gate.refresh_now() and gate.bad_rows == []
    assert admitted_in_a_row(gate, "p") == 1


def test_an_absurd_version_does_not_hide_later_changes(tmp_path, make_gate):
    db = sqlite_table(
        tmp_path, {"client_id": "*", "max_concurrent_uploads": 1}, {"client_id": "p", "version": MAX_VERSION + 1}
    )
    gate = make_gate(source=SqliteSource(db))
    assert gate.config_version == 1
    insert_sqlite_row(db, client_id="*", max_concurrent_uploads=3, version=2)
    assert gate.refresh_now() and gate.config_version == 2
    assert admitted_in_a_row(gate, "direct-user") == 3


def test_without_fallback_limits_a_gate_that_cannot_read_the_table_is_not_unlimited(tmp_path, make_gate):
    gate = make_gate(source=SqliteSource(tmp_path / "absent.sqlite3"))
    assert not gate.loaded
    assert admitted_in_a_row(gate, "c") == DEFAULT_FALLBACK_LIMITS["max_concurrent_uploads"]
    assert gate.admit("c", 1).limit == LIMIT_CONCURRENCY


def test_ops_can_still_choose_to_run_unlimited_until_the_first_read(tmp_path, make_gate):
    gate = make_gate(source=SqliteSource(tmp_path / "absent.sqlite3"), fallback_limits={})
    assert admitted_in_a_row(gate, "c", attempts=50) == 50


def test_a_missing_star_row_gives_clients_without_a_row_the_fallback_limits(make_gate):
    gate = make_gate(source=StaticSource([{"client_id": "p", "max_concurrent_uploads": 5, "version": 4}]))
    assert admitted_in_a_row(gate, "direct-user") == DEFAULT_FALLBACK_LIMITS["max_concurrent_uploads"]
    assert admitted_in_a_row(gate, "p") == 5
    assert [(bad["client_id"], bad["column"]) for bad in gate.bad_rows] == [("*", "client_id")]


def test_a_star_row_that_disappears_keeps_its_last_good_copy(make_gate):
    source = StaticSource([star_row(max_concurrent_uploads=2)])
    gate = make_gate(source=source)
    source.set_rows([{"client_id": "p", "version": 2}])
    assert gate.refresh_now()
    assert admitted_in_a_row(gate, "direct-user") == 2


def test_a_bad_fallback_limit_refuses_to_start(make_gate):
    with pytest.raises(ValueError, match="max_concurrent_uploads"):
        make_gate(fallback_limits={"max_concurrent_uploads": -1})


def test_static_source_takes_reduced_limits_as_a_frozenset_or_a_list(make_gate):
    for reduced in (frozenset({"max_concurrent_uploads"}), ["max_concurrent_uploads"]):
        gate = make_gate(
            [star_row(), {"client_id": "p", "max_concurrent_uploads": 1, "reduced_limits": reduced, "version": 1}]
        )
        gate.admit("p", 1)
        decision = gate.admit("p", 1)
        assert (decision.status, decision.limit) == (503, LIMIT_CONCURRENCY), reduced
        assert gate.bad_rows == []


# -- admit() checks the size it is given -------------------------------------------------
@pytest.mark.parametrize("size", [998.5, 1.0, True, "10", None])
def test_admit_refuses_a_size_that_is_not_an_integer(make_gate, size):
    gate = make_gate([star_row(max_bytes_in_flight=1000)])
    with pytest.raises(TypeError, match="size_bytes"):
        gate.admit("c", size)
    assert gate.snapshot_counters()["clients"] == {}


def test_admit_refuses_a_negative_size(make_gate):
    gate = make_gate([star_row()])
    with pytest.raises(ValueError, match="size_bytes must be >= 0"):
        gate.admit("c", -1)


def test_admit_accepts_other_integer_types_as_plain_ints(make_gate):
    class Bytes:  # numpy.int64 and friends: integers through __index__
        def __index__(self) -> int:
            return 600

    gate = make_gate([star_row(max_bytes_in_flight=1000)])
    decision = gate.admit("c", Bytes(), want_headers=True)
    assert decision.admitted and decision.lease.size_bytes.__class__ is int
    assert '"inflight-bytes";r=400' in decision.headers()["RateLimit"]


# -- staleness ---------------------------------------------------------------------------
class ListeningSource(StaticSource):
    """An in-memory table with a LISTEN connection the test can break and restore."""

    supports_notify = True

    def __init__(self, rows) -> None:
        super().__init__(rows)
        self.listen_up = threading.Event()
        self.listen_up.set()

    def open_listener(self):
        if not self.listen_up.is_set():
            raise SourceUnavailable("listen: connection refused")
        return self

    def wait(self, timeout_seconds: float) -> bool:
        time.sleep(min(timeout_seconds, 0.01))
        if not self.listen_up.is_set():
            raise SourceUnavailable("listen: server closed the connection")
        return False


def wait_until(predicate, timeout_seconds: float = 10.0) -> bool:
    """A generous guard, not what is asserted (the poll interval is an hour)."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def test_losing_the_database_shows_as_stale_long_before_a_long_poll_interval(make_gate):
    source = ListeningSource([star_row(max_concurrent_uploads=1)])
    gate = make_gate(source=source, start=True, poll_interval_seconds=3600)
    assert wait_until(lambda: gate.refresher.listening)
    source.available = False
    source.listen_up.clear()
    assert wait_until(lambda: gate.stale_since is not None)
    # The LISTEN connection coming back is not a good read: still stale while reads fail.
    source.listen_up.set()
    assert wait_until(lambda: gate.refresher.listening)
    assert gate.refresh_now() is False and gate.stale_since is not None
    # A good read clears it (the listener's reconnect wakes the poller at once).
    source.listen_up.clear()
    assert wait_until(lambda: not gate.refresher.listening)
    source.available = True
    source.listen_up.set()
    assert wait_until(lambda: gate.stale_since is None)


def test_a_broken_listen_connection_alone_clears_on_the_next_good_read(make_gate):
    source = ListeningSource([star_row()])
    gate = make_gate(source=source, start=True, poll_interval_seconds=3600)
    assert wait_until(lambda: gate.refresher.listening)
    source.listen_up.clear()
    # Stale at once, then the woken poller reads the table fine and clears it.
    assert wait_until(lambda: gate.refresher.stats["polls"] >= 2)
    assert wait_until(lambda: gate.stale_since is None)


def test_sqlite_rejects_a_text_boolean_the_way_postgres_never_sends_one(tmp_path, make_gate):
    # SQLite stores 'false' as text in a boolean column; PostgreSQL would refuse it on write.
    db = sqlite_table(tmp_path, {"client_id": "*"})
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE upload_limits SET all_partners_paused = 'no'")
    gate = make_gate(source=SqliteSource(db))
    assert [(bad["client_id"], bad["column"]) for bad in gate.bad_rows] == [("*", "all_partners_paused")]
    assert admitted_in_a_row(gate, "c") == DEFAULT_FALLBACK_LIMITS["max_concurrent_uploads"]
