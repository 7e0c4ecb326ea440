"""Renewing a long upload's lease: it keeps its slot past the first deadline, locally and in Redis."""

from __future__ import annotations

from tests.factories import create_sqlite_table, insert_sqlite_row, star_row
from upload_gate import SqliteSource


def test_a_renewed_lease_outlives_its_first_deadline_and_keeps_its_slot(make_gate, clock):
    gate = make_gate([star_row(max_concurrent_uploads=1)], lease_timeout_seconds=10)
    lease = gate.admit("partner", 100).lease
    clock.advance(8)
    assert gate.renew(lease)
    clock.advance(5)  # 13 s after admission: past the first deadline, within the renewed one
    assert gate.sweep_expired() == 0
    assert not gate.admit("partner", 1).admitted  # the slot is still taken
    assert gate.release(lease, "completed")
    counts = gate.snapshot_counters()["clients"]["partner"]
    assert counts["completed"] == 1 and counts["timed_out"] == 0


def test_a_renewed_lease_still_expires_one_timeout_after_the_renewal(make_gate, clock):
    gate = make_gate([star_row(max_concurrent_uploads=1)], lease_timeout_seconds=10)
    lease = gate.admit("partner", 100).lease
    clock.advance(5)
    gate.renew(lease)
    clock.advance(10)
    assert gate.sweep_expired() == 1
    assert gate.admit("partner", 1).admitted


def test_renewing_an_expired_or_released_lease_fails_and_changes_nothing(make_gate, clock):
    gate = make_gate([star_row(max_concurrent_uploads=1)], lease_timeout_seconds=10)
    expired = gate.admit("partner", 100).lease
    clock.advance(10)
    assert not gate.renew(expired)
    later = gate.admit("partner", 1)
    assert later.admitted  # the expired lease's slot went to this upload
    assert gate.release(later.lease)
    assert not gate.renew(later.lease)
    counts = gate.snapshot_counters()["clients"]["partner"]
    assert counts["timed_out"] == 1 and counts["uploads_in_flight"] == 0


def test_leases_expire_in_deadline_order_after_one_of_them_was_renewed(make_gate, clock):
    # Leases are kept in deadline order; renewing the oldest must not hide the next one's expiry.
    gate = make_gate([star_row(max_concurrent_uploads=3)], lease_timeout_seconds=10)
    first = gate.admit("partner", 1).lease
    clock.advance(1)
    second = gate.admit("partner", 1).lease
    clock.advance(1)
    gate.renew(first)  # first now ends at 12 s, second still at 11 s
    clock.advance(9.5)  # 11.5 s
    assert gate.sweep_expired() == 1
    assert second.done and not first.done
    clock.advance(1)  # 12.5 s
    assert gate.sweep_expired() == 1 and first.done


def test_renewal_moves_the_deadline_in_redis_so_other_servers_keep_counting_it(
    tmp_path, make_gate, clock, redis_server, redis_prefix
):
    db = tmp_path / "shared.sqlite3"
    create_sqlite_table(db)
    insert_sqlite_row(db, client_id="*", max_concurrent_uploads=1, live_server_count=2)
    options = {"redis_url": redis_server.url, "redis_key_prefix": redis_prefix, "lease_timeout_seconds": 10}
    s1 = make_gate(source=SqliteSource(db), server_id="s1", **options)
    s2 = make_gate(source=SqliteSource(db), server_id="s2", **options)
    lease = s1.admit("partner", 100).lease
    clock.advance(8)
    assert s1.renew(lease)
    clock.advance(5)  # past the first deadline: without the renewal Redis would have dropped it
    assert not s2.admit("partner", 1).admitted
    assert s1.release(lease)
    assert s2.admit("partner", 1).admitted
