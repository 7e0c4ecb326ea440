"""Against a real PostgreSQL the test starts itself: NOTIFY, timestamptz, and an outage."""

from __future__ import annotations

from datetime import timedelta, timezone

import psycopg
from test_gate_table import wait_until

from upload_gate import UploadGate

INSERT = """
INSERT INTO upload_limits (client_id, requests_per_minute, burst, max_concurrent_uploads, max_bytes_in_flight,
    daily_upload_bytes, paused, pause_reason, resume_at, priority, version, updated_at, all_partners_paused,
    all_partners_pause_reason, all_partners_resume_at, live_server_count)
VALUES (%(client_id)s, NULL, NULL, %(max_concurrent_uploads)s, NULL, NULL, %(paused)s, %(pause_reason)s,
    %(resume_at)s, %(priority)s, %(version)s, now(), false, '', NULL, 1)
"""


def insert_row(
    dsn: str,
    client_id: str = "*",
    *,
    max_concurrent_uploads=None,
    paused=False,
    pause_reason="",
    resume_at=None,
    priority="interactive",
    version=1,
) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(INSERT, locals())


def publish(dsn: str, sql: str, version: int) -> None:
    """A change as the publisher makes it: the update and NOTIFY in one transaction."""
    with psycopg.connect(dsn) as conn:
        conn.execute(sql)
        conn.execute(f"NOTIFY upload_limits, '{version}'")


def test_it_reads_postgres_timestamptz_booleans_and_priority(pg_database, clock):
    resume_at = clock.now().astimezone(timezone(timedelta(hours=-5))) + timedelta(hours=1)  # any zone
    insert_row(pg_database, max_concurrent_uploads=2)
    insert_row(
        pg_database,
        "p",
        paused=True,
        pause_reason="paused by ops",
        resume_at=resume_at,
        priority="bulk",
        version=2,
    )
    with UploadGate(pg_database, start=False, clock=clock, jitter_fraction=0) as gate:
        assert gate.config_version == 2
        decision = gate.admit("p", 1)
        assert (decision.status, decision.reason, decision.retry_after_seconds) == (
            503,
            "paused by ops",
            3600,
        )
        assert gate.client_config("p")["priority"] == "bulk"


def test_a_change_committed_with_notify_is_applied_without_waiting_for_the_poll(pg_database):
    insert_row(pg_database, max_concurrent_uploads=1)
    # With a 30 s poll interval, the first timed poll is 30 s away: within the 10 s guard
    # below, only the notification can bring the change in.
    with UploadGate(pg_database, poll_interval_seconds=30, start=True) as gate:
        assert gate.config_version == 1
        assert wait_until(lambda: gate.refresher.listening)
        publish(pg_database, "UPDATE upload_limits SET max_concurrent_uploads = 4, version = 2", 2)
        assert wait_until(lambda: gate.config_version == 2, timeout_seconds=10)
        assert gate.refresher.stats["notifications"] >= 1
        assert gate.refresher.stats["reloads_after_wake"] >= 1
        assert [gate.admit("c", 1).admitted for _ in range(5)] == [True] * 4 + [False]


def test_the_gate_keeps_deciding_while_postgres_is_down_and_picks_up_changes_after(pg_cluster, pg_database):
    insert_row(pg_database, max_concurrent_uploads=1)
    with UploadGate(pg_database, poll_interval_seconds=0.1, max_backoff_seconds=0.2, start=True) as gate:
        held = gate.admit("c", 1)
        assert held.admitted and gate.stale_since is None
        pg_cluster.stop()
        try:
            assert wait_until(lambda: gate.stale_since is not None)
            report = gate.snapshot_counters(reset=False)
            assert report["stale_since"] is not None and report["config_version"] == 1
            # Fail static: the last good copy (1 upload at a time) is still enforced.
            assert gate.admit("c", 1).limit == "max_concurrent_uploads"
            gate.release(held.lease)
            held = gate.admit("c", 1)
            assert held.admitted
        finally:
            pg_cluster.start()
        publish(pg_database, "UPDATE upload_limits SET max_concurrent_uploads = 3, version = 2", 2)
        assert wait_until(lambda: gate.config_version == 2 and gate.stale_since is None)
        assert [gate.admit("c", 1).admitted for _ in range(3)] == [True, True, False]


def test_a_lost_postgres_shows_as_stale_at_once_with_a_long_poll_interval(pg_cluster, pg_database):
    insert_row(pg_database, max_concurrent_uploads=1)
    # An hour between polls: within the 10 s guards only the lost LISTEN connection can tell.
    with UploadGate(pg_database, poll_interval_seconds=3600, start=True) as gate:
        assert wait_until(lambda: gate.refresher.listening)
        pg_cluster.stop()
        try:
            assert wait_until(lambda: gate.stale_since is not None, timeout_seconds=10)
        finally:
            pg_cluster.start()
        # The LISTEN connection comes back and wakes the poller: its good read clears it.
        assert wait_until(lambda: gate.stale_since is None, timeout_seconds=10)
        publish(pg_database, "UPDATE upload_limits SET max_concurrent_uploads = 2, version = 2", 2)
        assert wait_until(lambda: gate.config_version == 2, timeout_seconds=10)


def test_a_bad_postgres_row_is_skipped_and_named(pg_database):
    insert_row(pg_database, max_concurrent_uploads=1)
    insert_row(pg_database, "p", max_concurrent_uploads=-5, version=2)
    insert_row(pg_database, "q", max_concurrent_uploads=3, version=10**15)
    with UploadGate(pg_database, start=False) as gate:
        assert [(bad["client_id"], bad["column"]) for bad in gate.bad_rows] == [
            ("p", "max_concurrent_uploads"),
            ("q", "version"),
        ]
        assert gate.config_version == 2 and gate.stale_since is None
        assert [gate.admit("p", 1).admitted for _ in range(2)] == [True, False]  # the `*` row
        publish(
            pg_database, "UPDATE upload_limits SET max_concurrent_uploads = 2, version = 3 WHERE client_id = 'p'", 3
        )
        assert gate.refresh_now() and gate.config_version == 3
        assert [bad["client_id"] for bad in gate.bad_rows] == ["q"]
