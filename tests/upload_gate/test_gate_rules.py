"""The gate's rules and its public API, on an in-memory table and a manual clock."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest

from tests.factories import NOON, star_row
from upload_gate import (
    LIMIT_ALL_PARTNERS_PAUSED,
    LIMIT_BYTES_IN_FLIGHT,
    LIMIT_CONCURRENCY,
    LIMIT_DAILY_BYTES,
    LIMIT_PAUSED,
    LIMIT_RATE,
    StaticSource,
    UploadGate,
    share,
)


def test_an_admitted_decision_carries_status_200_and_a_lease(make_gate):
    gate = make_gate([star_row(max_concurrent_uploads=2)])
    decision = gate.admit("partner", 1000)
    assert (decision.admitted, decision.status, decision.reason) == (True, 200, "")
    assert decision.retry_after_seconds is None and decision.limit is None
    assert decision.lease.client_id == "partner" and decision.lease.size_bytes == 1000
    assert bool(decision) is True


def test_it_rejects_uploads_over_the_concurrency_cap_with_429_and_retry_after(make_gate):
    gate = make_gate([star_row(max_concurrent_uploads=1)], busy_retry_after_seconds=7)
    gate.admit("c", 1)
    decision = gate.admit("c", 1)
    assert (decision.admitted, decision.status, decision.limit) == (False, 429, LIMIT_CONCURRENCY)
    assert decision.retry_after_seconds == 7 and decision.lease is None
    assert decision.reason


def test_it_rejects_requests_faster_than_the_rate_and_admits_them_after_the_interval(make_gate, clock):
    gate = make_gate([star_row(requests_per_minute=30, burst=2)])
    assert gate.admit("c", 1).admitted and gate.admit("c", 1).admitted
    rejected = gate.admit("c", 1)
    assert (rejected.limit, rejected.retry_after_seconds) == (LIMIT_RATE, 2)
    clock.advance(2)
    assert gate.admit("c", 1).admitted


def test_it_rejects_bytes_in_flight_over_the_cap_counting_declared_sizes(make_gate):
    gate = make_gate([star_row(max_bytes_in_flight=100)])
    first = gate.admit("c", 60)
    assert gate.admit("c", 41).limit == LIMIT_BYTES_IN_FLIGHT
    assert gate.admit("c", 40).admitted
    gate.release(first.lease)
    assert gate.admit("c", 60).admitted


def test_daily_bytes_reset_at_utc_midnight(make_gate, clock):
    clock.set_wall(NOON.replace(hour=23, minute=59, second=59))
    gate = make_gate([star_row(daily_upload_bytes=10)])
    assert gate.admit("c", 10).admitted
    rejected = gate.admit("c", 1)
    assert (rejected.limit, rejected.retry_after_seconds) == (LIMIT_DAILY_BYTES, 1)
    clock.advance(1)
    assert gate.admit("c", 10).admitted


def test_paused_client_gets_503_with_the_pause_reason(make_gate):
    gate = make_gate(
        [star_row(), {"client_id": "p", "paused": True, "pause_reason": "import paused", "version": 1}],
        paused_retry_after_seconds=45,
    )
    decision = gate.admit("p", 1)
    assert (decision.status, decision.limit, decision.reason) == (503, LIMIT_PAUSED, "import paused")
    assert decision.retry_after_seconds == 45
    assert decision.headers() == {"Retry-After": "45"}


def test_global_pause_rejects_partners_but_not_clients_on_the_defaults(make_gate):
    gate = make_gate(
        [
            star_row(all_partners_paused=True, all_partners_pause_reason="recovering"),
            {"client_id": "p", "version": 1},
        ]
    )
    assert (gate.admit("p", 1).limit, gate.admit("p", 1).reason) == (LIMIT_ALL_PARTNERS_PAUSED, "recovering")
    assert gate.admit("someone", 1).admitted


def test_a_pause_whose_resume_at_has_passed_is_over(make_gate, clock):
    resume = NOON + timedelta(seconds=10)
    gate = make_gate([star_row(), {"client_id": "p", "paused": True, "resume_at": resume.isoformat(), "version": 1}])
    assert gate.admit("p", 1).retry_after_seconds == 10
    clock.advance(10)
    assert gate.admit("p", 1).admitted


def test_clients_without_a_row_each_get_their_own_counters_with_the_star_limits(make_gate):
    gate = make_gate([star_row(max_concurrent_uploads=1)])
    assert gate.admit("a", 1).admitted and gate.admit("b", 1).admitted
    assert not gate.admit("a", 1).admitted


def test_each_server_enforces_its_rounded_up_share_of_fleet_wide_limits(make_gate):
    gate = make_gate([star_row(max_concurrent_uploads=10, live_server_count=3)])
    assert [gate.admit("c", 1).admitted for _ in range(5)] == [True] * 4 + [False]
    assert gate.client_config("c")["server_share"]["max_concurrent_uploads"] == 4
    assert [share(1, 40), share(10, 3), share(9, 3), share(0, 3), share(None, 3)] == [1, 4, 3, 0, None]


def test_priority_is_carried_through_to_the_client_config(make_gate):
    gate = make_gate([star_row(), {"client_id": "p", "priority": "bulk", "version": 1}])
    assert gate.client_config("p")["priority"] == "bulk"
    assert gate.client_config("unknown")["priority"] == "interactive"


def test_releasing_twice_is_a_no_op(make_gate):
    gate = make_gate([star_row(max_concurrent_uploads=2)])
    lease = gate.admit("c", 5).lease
    assert gate.release(lease, "completed") is True
    assert gate.release(lease, "failed") is False
    assert lease.done
    counts = gate.snapshot_counters()["clients"]["c"]
    assert (counts["completed"], counts["failed"], counts["uploads_in_flight"]) == (1, 0, 0)


def test_release_rejects_an_unknown_outcome(make_gate):
    gate = make_gate()
    with pytest.raises(ValueError):
        gate.release(gate.admit("c", 1).lease, "finished")


def test_a_negative_size_is_refused(make_gate):
    with pytest.raises(ValueError):
        make_gate().admit("c", -1)


def test_a_lease_not_released_within_the_timeout_expires_as_timed_out(make_gate, clock):
    gate = make_gate([star_row(max_concurrent_uploads=1)], lease_timeout_seconds=30)
    lease = gate.admit("c", 5).lease
    clock.advance(30)
    assert gate.admit("c", 5).admitted  # the crashed upload's slot came back
    assert gate.release(lease) is False
    counts = gate.snapshot_counters()["clients"]["c"]
    assert (counts["timed_out"], counts["uploads_in_flight"], counts["bytes_in_flight"]) == (1, 1, 5)


def test_sweep_expires_leases_of_clients_nobody_touches(make_gate, clock):
    gate = make_gate(lease_timeout_seconds=10)
    for client in ("a", "b", "c"):
        gate.admit(client, 1)
    clock.advance(9)
    assert gate.sweep_expired() == 0
    clock.advance(1)
    assert gate.sweep_expired() == 3
    assert gate.snapshot_counters()["uploads_in_flight"] == 0


def test_snapshot_counters_is_json_ready_and_resets(make_gate):
    gate = make_gate([star_row(max_concurrent_uploads=1)])
    lease = gate.admit("c", 7).lease
    gate.admit("c", 7)
    first = gate.snapshot_counters(reset=True)
    json.dumps(first)
    assert first["clients"]["c"] == {
        "admitted": 1,
        "throttled": 1,
        "paused": 0,
        "completed": 0,
        "failed": 0,
        "timed_out": 0,
        "uploads_in_flight": 1,
        "bytes_in_flight": 7,
    }
    assert (first["config_version"], first["uploads_in_flight"], first["bytes_in_flight"]) == (1, 1, 7)
    gate.release(lease)
    second = gate.snapshot_counters(reset=True)
    assert second["clients"]["c"]["admitted"] == 0 and second["clients"]["c"]["completed"] == 1
    assert gate.snapshot_counters()["clients"] == {}


def test_headers_are_only_built_when_asked(make_gate):
    gate = make_gate([star_row(requests_per_minute=60, burst=2, max_concurrent_uploads=10)])
    lazy = gate.admit("c", 1)
    assert lazy._headers is None
    eager = gate.admit("c", 1, want_headers=True)
    assert eager._headers is not None
    assert lazy.headers() == {
        "RateLimit-Policy": '"rpm";q=60;w=60, "inflight";q=10;qu="concurrent-requests"',
        "RateLimit": '"rpm";r=1;t=1, "inflight";r=9',
    }
    assert eager.headers()["RateLimit"] == '"rpm";r=0;t=1, "inflight";r=8'  # the next one conforms in 1 s


def test_want_headers_builds_the_fields_of_a_rejection_too(make_gate):
    gate = make_gate([star_row(max_concurrent_uploads=1)])
    gate.admit("c", 1)
    rejected = gate.admit("c", 1, want_headers=True)
    assert hasattr(rejected, "_headers")
    assert rejected.headers() == {
        "RateLimit-Policy": '"inflight";q=1;qu="concurrent-requests"',
        "RateLimit": '"inflight";r=0',
        "Retry-After": "5",
    }


def test_retry_after_jitter_stays_within_zero_to_twenty_percent(make_gate):
    values = iter([0.0, 0.5, 0.999999])
    gate = make_gate(
        [star_row(max_concurrent_uploads=0)],
        busy_retry_after_seconds=100,
        jitter_fraction=0.2,
        random=lambda: next(values),
    )
    assert [gate.admit("c", 1).retry_after_seconds for _ in range(3)] == [100, 110, 119]


def test_fallback_limits_apply_until_the_first_successful_load(make_gate):
    source = StaticSource([star_row(max_concurrent_uploads=5)])
    source.available = False
    gate = make_gate(source=source, fallback_limits={"max_concurrent_uploads": 1})
    assert gate.config_version is None and not gate.loaded and gate.stale_since is not None
    assert [gate.admit("c", 1).admitted for _ in range(2)] == [True, False]
    source.available = True
    assert gate.refresh_now()
    assert gate.config_version == 1 and gate.stale_since is None
    assert gate.admit("c", 1).admitted


def test_the_last_good_copy_stays_in_force_while_the_table_is_unreachable(make_gate, clock):
    source = StaticSource([star_row(max_concurrent_uploads=1)])
    gate = make_gate(source=source)
    source.available = False
    clock.advance(5)
    assert gate.refresh_now() is False
    assert gate.stale_since == NOON + timedelta(seconds=5)
    assert [gate.admit("c", 1).admitted for _ in range(2)] == [True, False]
    assert gate.snapshot_counters()["stale_since"] == "2025-03-10T12:00:05Z"


def test_refresh_backs_off_exponentially_up_to_the_cap_while_failing(make_gate):
    source = StaticSource([star_row()])
    gate = make_gate(source=source, poll_interval_seconds=10.0, max_backoff_seconds=4.0)
    source.available = False
    waits = []
    for _ in range(6):
        gate.refresh_now()
        waits.append(gate.refresher.next_wait_seconds())
    assert waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    source.available = True
    gate.refresh_now()
    assert gate.refresher.next_wait_seconds() == 10.0


def test_retries_never_wait_longer_than_the_poll_interval(make_gate):
    # After a long outage the database is read again within one poll interval, not a 30 s backoff.
    source = StaticSource([star_row()])
    gate = make_gate(source=source, poll_interval_seconds=1.0, max_backoff_seconds=30.0)
    source.available = False
    waits = []
    for _ in range(8):
        gate.refresh_now()
        waits.append(gate.refresher.next_wait_seconds())
    assert waits == [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]


def test_idle_clients_are_forgotten_after_a_report(make_gate, clock):
    gate = make_gate([star_row(requests_per_minute=60)])
    gate.release(gate.admit("direct-user", 1).lease)
    gate.snapshot_counters()
    clock.advance(2)
    gate.snapshot_counters()
    assert "direct-user" not in gate._states


def test_concurrent_threads_never_exceed_the_concurrency_cap():
    gate = UploadGate(source=StaticSource([star_row(max_concurrent_uploads=3, max_bytes_in_flight=300)]), start=False)
    held, peak, guard = [0], [0], threading.Lock()

    def worker():
        for _ in range(2000):
            decision = gate.admit("c", 100)
            if decision.admitted:
                with guard:
                    held[0] += 1
                    peak[0] = max(peak[0], held[0])
                with guard:
                    held[0] -= 1
                gate.release(decision.lease)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = gate.snapshot_counters()["clients"]["c"]
    gate.close()
    assert peak[0] <= 3
    assert counts["admitted"] == counts["completed"] and counts["uploads_in_flight"] == 0
    assert counts["admitted"] + counts["throttled"] == 16000


def test_a_limit_lowered_for_load_answers_503_temporary_reduced_capacity(make_gate):
    gate = make_gate(
        [
            star_row(),
            {
                "client_id": "archive",
                "version": 1,
                "priority": "bulk",
                "max_concurrent_uploads": 1,
                "reduced_limits": "max_concurrent_uploads",
            },
        ]
    )
    assert gate.admit("archive", 10).admitted
    decision = gate.admit("archive", 10)
    body = decision.as_dict()
    assert (decision.status, body["type"], body["title"], body["violated-policies"]) == (
        503,
        "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity",
        "Temporary Reduced Capacity",
        ["inflight"],
    )
    assert decision.headers()["RateLimit-Policy"] == '"inflight";q=1;qu="concurrent-requests"'
    assert gate.admit("someone", 10).admitted  # direct users are not touched
