"""The cases of docs/gate-test-vectors.json, with hand-written expectations.

Shorthand: admit(t_ms, client, size, "ok") or admit(t_ms, client, size, status, limit,
retry_after_seconds). The builder (gate_vectors_build.py) fills in headers and counters.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

RPM = "requests_per_minute"
CONC = "max_concurrent_uploads"
BYTES = "max_bytes_in_flight"
DAILY = "daily_upload_bytes"
PAUSED = "paused"
ALL_PAUSED = "all_partners_paused"

NOON = "2025-03-10T12:00:00Z"
CONFIG = {
    "lease_timeout_seconds": 900,
    "busy_retry_after_seconds": 5,
    "paused_retry_after_seconds": 60,
    "jitter_fraction": 0,
    # The gate's built-in default; a case without a `*` row shows it in use.
    "fallback_limits": {"requests_per_minute": 60, "burst": 10, "max_concurrent_uploads": 4},
}


def at(start: str, seconds: float) -> str:
    moment = datetime.fromisoformat(start.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")


def row(client_id: str = "*", **values) -> dict:
    """A complete table row; limits default to null (no limit)."""
    full = {
        "client_id": client_id,
        "requests_per_minute": None,
        "burst": None,
        "max_concurrent_uploads": None,
        "max_bytes_in_flight": None,
        "daily_upload_bytes": None,
        "paused": False,
        "pause_reason": "",
        "resume_at": None,
        "priority": "bulk" if client_id != "*" else "interactive",
        "version": 1,
        "updated_at": "2025-03-01T00:00:00Z",
        "all_partners_paused": False,
        "all_partners_pause_reason": "",
        "all_partners_resume_at": None,
        "live_server_count": 1,
    }
    # Shadow columns are written only when a case sets them (rows without them read as null).
    shadow = {f"shadow_{name}" for name in (RPM, "burst", CONC, BYTES, DAILY)}
    unknown = set(values) - set(full) - shadow - {"reduced_limits"}
    if unknown:
        raise KeyError(unknown)
    full.update(values)
    return full


def admit(t_ms: int, client: str, size: int, *expect, lease: str | None = None, headers: dict | None = None) -> dict:
    """expect: ("ok",) or (status, limit, retry_after_seconds); headers: the exact fields, by hand."""
    event = {"t_ms": t_ms, "op": "admit", "client": client, "size_bytes": size}
    if lease:
        event["lease"] = lease
    if expect[0] == "ok":
        event["_hand"] = {"admitted": True, "status": 200, "limit": None, "retry_after_seconds": None}
    else:
        status, limit, retry = expect
        event["_hand"] = {"admitted": False, "status": status, "limit": limit, "retry_after_seconds": retry}
    if headers is not None:
        event["_hand"]["headers"] = headers
    return event


def release(t_ms: int, lease: str, outcome: str = "completed", released: bool = True) -> dict:
    return {
        "t_ms": t_ms,
        "op": "release",
        "lease": lease,
        "outcome": outcome,
        "_hand": {"released": released},
    }


def table(t_ms: int, rows: list[dict]) -> dict:
    return {"t_ms": t_ms, "op": "table", "rows": rows}


def counters(t_ms: int, **hand) -> dict:
    return {"t_ms": t_ms, "op": "counters", "_hand": hand}


def bad_rows(t_ms: int, *named: tuple[str, str]) -> dict:
    """The rows skipped as unparseable, as (client_id, column) pairs in table order."""
    return {"t_ms": t_ms, "op": "bad_rows", "_hand": {"bad_rows": [{"client_id": c, "column": k} for c, k in named]}}


def case(name: str, description: str, rows: list[dict], events: list[dict], *, start: str = NOON, **config) -> dict:
    return {
        "name": name,
        "description": description,
        "start": start,
        "config": {**CONFIG, **config},
        "rows": rows,
        "events": events,
    }


def many(t_ms: int, client: str, size: int, count: int, prefix: str) -> list[dict]:
    return [admit(t_ms, client, size, "ok", lease=f"{prefix}{i}") for i in range(1, count + 1)]


LATE = "2025-03-10T23:00:00Z"
MIDNIGHT_SOON = "2025-03-10T23:59:50Z"

CASES = [
    # -- request rate (GCRA) ----------------------------------------------------------
    case(
        "rate_burst_of_one_spaces_requests_by_the_interval",
        "rpm 60 with a null burst: one request per second, the next waits for the interval.",
        [row(requests_per_minute=60)],
        [
            admit(0, "a", 10, "ok"),
            admit(0, "a", 10, 429, RPM, 1),
            admit(999, "a", 10, 429, RPM, 1),
            admit(1000, "a", 10, "ok"),
        ],
    ),
    case(
        "rate_burst_allows_that_many_at_once",
        "rpm 60, burst 5: five at once, the sixth waits one interval.",
        [row(requests_per_minute=60, burst=5)],
        many(0, "a", 1, 5, "a")
        + [admit(0, "a", 1, 429, RPM, 1), admit(1000, "a", 1, "ok"), admit(1000, "a", 1, 429, RPM, 1)],
    ),
    case(
        "rate_fractional_interval_rounds_up",
        "rpm 7: interval = ceil(60 000 000 / 7) = 8 571 429 us; 8.571 s is too early, 8.572 s is fine.",
        [row(requests_per_minute=7)],
        [admit(0, "a", 1, "ok"), admit(8571, "a", 1, 429, RPM, 1), admit(8572, "a", 1, "ok")],
    ),
    case(
        "rate_idle_time_banks_at_most_the_burst",
        "After an hour idle, only `burst` requests pass at once.",
        [row(requests_per_minute=60, burst=2)],
        [
            admit(0, "a", 1, "ok"),
            admit(3_600_000, "a", 1, "ok"),
            admit(3_600_000, "a", 1, "ok"),
            admit(3_600_000, "a", 1, 429, RPM, 1),
        ],
    ),
    case(
        "rate_rejections_do_not_consume_quota",
        "A rejected request does not move the theoretical arrival time.",
        [row(requests_per_minute=60)],
        [admit(0, "a", 1, "ok")]
        + [admit(t, "a", 1, 429, RPM, 1) for t in (200, 400, 600, 800)]
        + [admit(1000, "a", 1, "ok")],
    ),
    case(
        "rate_zero_requests_per_minute_rejects_everything",
        "rpm 0: nothing conforms; Retry-After is the 60 s window.",
        [row(requests_per_minute=0, burst=10)],
        [admit(0, "a", 1, 429, RPM, 60), admit(120_000, "a", 1, 429, RPM, 60)],
    ),
    case(
        "rate_slow_rate_retry_after_rounds_up",
        "rpm 6 (10 s interval), burst 2: the third waits 10 s; 1.5 s later it waits 8.5 s, rounded up to 9.",
        [row(requests_per_minute=6, burst=2)],
        [
            admit(0, "a", 1, "ok"),
            admit(0, "a", 1, "ok"),
            admit(0, "a", 1, 429, RPM, 10),
            admit(1500, "a", 1, 429, RPM, 9),
            admit(10_000, "a", 1, "ok"),
        ],
    ),
    case(
        "rate_burst_larger_than_rate",
        "rpm 1, burst 3: three at once, then one a minute.",
        [row(requests_per_minute=1, burst=3)],
        many(0, "a", 1, 3, "a")
        + [admit(0, "a", 1, 429, RPM, 60), admit(60_000, "a", 1, "ok"), admit(60_000, "a", 1, 429, RPM, 60)],
    ),
    case(
        "rate_exact_boundary_admits",
        "rpm 60, burst 2: at exactly the conforming instant the request passes; 1 ms before it does not.",
        [row(requests_per_minute=60, burst=2)],
        [
            admit(0, "a", 1, "ok"),
            admit(0, "a", 1, "ok"),
            admit(999, "a", 1, 429, RPM, 1),
            admit(1000, "a", 1, "ok"),
            admit(1000, "a", 1, 429, RPM, 1),
        ],
    ),
    case(
        "rate_burst_zero_is_a_burst_of_one",
        "A burst below 1 is treated as 1.",
        [row(requests_per_minute=60, burst=0)],
        [admit(0, "a", 1, "ok"), admit(0, "a", 1, 429, RPM, 1)],
    ),
    case(
        "no_rate_limit_when_requests_per_minute_is_null",
        "A burst without a rate means nothing; no limits at all means no RateLimit fields.",
        [row(burst=5)],
        many(0, "a", 1, 10, "a"),
    ),
    # -- concurrency ------------------------------------------------------------------
    case(
        "concurrency_cap_then_release_frees_a_slot",
        "max_concurrent_uploads 2: the third waits (busy Retry-After 5 s) until a release.",
        [row(max_concurrent_uploads=2)],
        [
            admit(0, "a", 1, "ok", lease="a1"),
            admit(0, "a", 1, "ok", lease="a2"),
            admit(10, "a", 1, 429, CONC, 5),
            release(20, "a1"),
            admit(30, "a", 1, "ok", lease="a3"),
            admit(40, "a", 1, 429, CONC, 5),
        ],
    ),
    case(
        "failed_and_timed_out_releases_free_slots",
        "Every outcome ends the lease; the counters say which.",
        [row(max_concurrent_uploads=1)],
        [
            admit(0, "a", 5, "ok", lease="a1"),
            release(10, "a1", "failed"),
            admit(20, "a", 5, "ok", lease="a2"),
            release(30, "a2", "timed_out"),
            admit(40, "a", 5, "ok", lease="a3"),
            counters(
                50,
                a={"admitted": 3, "failed": 1, "timed_out": 1, "uploads_in_flight": 1, "bytes_in_flight": 5},
            ),
        ],
    ),
    case(
        "releasing_twice_is_a_no_op",
        "The second release returns false and frees nothing.",
        [row(max_concurrent_uploads=1)],
        [
            admit(0, "a", 1, "ok", lease="a1"),
            release(10, "a1"),
            release(20, "a1", released=False),
            admit(30, "a", 1, "ok", lease="a2"),
            admit(40, "a", 1, 429, CONC, 5),
            counters(50, a={"admitted": 2, "throttled": 1, "completed": 1, "uploads_in_flight": 1}),
        ],
    ),
    case(
        "concurrency_zero_blocks_every_upload",
        "max_concurrent_uploads 0 admits nothing.",
        [row(max_concurrent_uploads=0)],
        [admit(0, "a", 1, 429, CONC, 5)],
    ),
    case(
        "zero_byte_uploads_count_towards_concurrency",
        "A 0-byte upload takes a slot but no bytes.",
        [row(max_concurrent_uploads=1, max_bytes_in_flight=10)],
        [admit(0, "a", 0, "ok"), admit(0, "a", 0, 429, CONC, 5)],
    ),
    # -- bytes in flight ----------------------------------------------------------------
    case(
        "bytes_in_flight_cap_counts_declared_sizes",
        "max_bytes_in_flight 1000: 600 + 400 fits exactly, one more byte does not; 0 bytes always fits.",
        [row(max_bytes_in_flight=1000)],
        [
            admit(0, "a", 600, "ok"),
            admit(0, "a", 500, 429, BYTES, 5),
            admit(0, "a", 400, "ok"),
            admit(0, "a", 1, 429, BYTES, 5),
            admit(0, "a", 0, "ok"),
        ],
    ),
    case(
        "upload_larger_than_the_bytes_in_flight_cap_is_rejected",
        "A single upload above the cap is never admitted.",
        [row(max_bytes_in_flight=1000)],
        [admit(0, "a", 1001, 429, BYTES, 5), admit(0, "a", 1000, "ok")],
    ),
    case(
        "bytes_in_flight_are_freed_on_completion",
        "Releasing returns the declared bytes.",
        [row(max_bytes_in_flight=1000)],
        [
            admit(0, "a", 1000, "ok", lease="a1"),
            admit(1, "a", 1, 429, BYTES, 5),
            release(2, "a1"),
            admit(3, "a", 1000, "ok"),
        ],
    ),
    # -- daily bytes ----------------------------------------------------------------------
    case(
        "daily_bytes_used_up_waits_until_utc_midnight",
        "At 23:00 UTC with the day's quota used, Retry-After is 3600 s.",
        [row(daily_upload_bytes=1000)],
        [admit(0, "a", 800, "ok"), admit(0, "a", 300, 429, DAILY, 3600), admit(0, "a", 200, "ok")],
        start=LATE,
    ),
    case(
        "daily_bytes_reset_at_utc_midnight",
        "The quota starts again at 00:00:00 UTC exactly.",
        [row(daily_upload_bytes=1000)],
        [
            admit(0, "a", 1000, "ok"),
            admit(9999, "a", 1, 429, DAILY, 1),
            admit(10_000, "a", 1000, "ok"),
            admit(10_001, "a", 1, 429, DAILY, 86400),
        ],
        start=MIDNIGHT_SOON,
    ),
    case(
        "daily_bytes_are_not_refunded_when_an_upload_fails",
        "Daily bytes count declared sizes at admission.",
        [row(daily_upload_bytes=1000)],
        [
            admit(0, "a", 1000, "ok", lease="a1"),
            release(10, "a1", "failed"),
            admit(20, "a", 1, 429, DAILY, 43200),
        ],
    ),
    # -- pauses ---------------------------------------------------------------------------
    case(
        "own_pause_rejects_with_503_and_the_reason",
        "A paused partner gets 503, the pause reason, and the default pause Retry-After.",
        [row(), row("p", paused=True, pause_reason="backlog import paused by ops")],
        [admit(0, "p", 1, 503, PAUSED, 60), admit(0, "other", 1, "ok")],
    ),
    case(
        "pause_with_resume_at_retries_until_then",
        "Retry-After counts down to resume_at, rounded up.",
        [row(), row("p", paused=True, pause_reason="maintenance", resume_at=at(NOON, 90))],
        [admit(0, "p", 1, 503, PAUSED, 90), admit(45_500, "p", 1, 503, PAUSED, 45)],
    ),
    case(
        "pause_whose_resume_at_has_passed_is_over",
        "A pause is over once resume_at has passed, even if `paused` is still true.",
        [row(), row("p", paused=True, pause_reason="maintenance", resume_at=at(NOON, -60))],
        [admit(0, "p", 1, "ok")],
    ),
    case(
        "pause_ends_by_itself_at_resume_at",
        "At resume_at exactly the pause is over.",
        [row(), row("p", paused=True, pause_reason="maintenance", resume_at=at(NOON, 30))],
        [
            admit(0, "p", 1, 503, PAUSED, 30),
            admit(29_999, "p", 1, 503, PAUSED, 1),
            admit(30_000, "p", 1, "ok"),
        ],
    ),
    case(
        "global_pause_applies_to_partners_not_to_defaults",
        "all_partners_paused on `*` pauses every row but `*`: clients without a row still upload.",
        [row(all_partners_paused=True, all_partners_pause_reason="fleet recovering"), row("p")],
        [admit(0, "p", 1, 503, ALL_PAUSED, 60), admit(0, "direct-user", 1, "ok")],
    ),
    case(
        "global_pause_with_resume_at_in_the_past_is_over",
        "all_partners_resume_at in the past ends the global pause.",
        [
            row(
                all_partners_paused=True,
                all_partners_pause_reason="fleet recovering",
                all_partners_resume_at=at(NOON, -1),
            ),
            row("p"),
        ],
        [admit(0, "p", 1, "ok")],
    ),
    case(
        "star_row_paused_pauses_clients_without_a_row_only",
        "`paused` on `*` applies to clients that use the defaults, not to partners with a row.",
        [row(paused=True, pause_reason="direct uploads paused"), row("p")],
        [admit(0, "direct-user", 1, 503, PAUSED, 60), admit(0, "p", 1, "ok")],
    ),
    case(
        "own_and_global_pause_wait_for_the_later_resume",
        "Both pauses hold: the own pause names the limit, Retry-After runs to the later resume_at.",
        [
            row(
                all_partners_paused=True,
                all_partners_pause_reason="fleet recovering",
                all_partners_resume_at=at(NOON, 300),
            ),
            row("p", paused=True, pause_reason="partner paused", resume_at=at(NOON, 120)),
        ],
        [
            admit(0, "p", 1, 503, PAUSED, 300),
            admit(120_000, "p", 1, 503, ALL_PAUSED, 180),
            admit(300_000, "p", 1, "ok"),
        ],
    ),
    case(
        "open_ended_pause_wins_over_a_timed_one",
        "An own pause without resume_at keeps the default Retry-After even if the global pause ends soon.",
        [
            row(
                all_partners_paused=True,
                all_partners_pause_reason="fleet recovering",
                all_partners_resume_at=at(NOON, 30),
            ),
            row("p", paused=True, pause_reason="partner paused"),
        ],
        [admit(0, "p", 1, 503, PAUSED, 60), admit(31_000, "p", 1, 503, PAUSED, 60)],
    ),
    # -- defaults and rows --------------------------------------------------------------
    case(
        "clients_without_a_row_get_the_star_defaults_each_with_their_own_counters",
        "`*` limits apply per client id, not shared between clients.",
        [row(max_concurrent_uploads=1)],
        [
            admit(0, "x", 1, "ok"),
            admit(0, "y", 1, "ok"),
            admit(0, "x", 1, 429, CONC, 5),
            admit(0, "y", 1, 429, CONC, 5),
        ],
    ),
    case(
        "partner_row_overrides_the_star_defaults",
        "A partner's row replaces the defaults.",
        [row(max_concurrent_uploads=1), row("p", max_concurrent_uploads=3)],
        many(0, "p", 1, 3, "p")
        + [admit(0, "p", 1, 429, CONC, 5), admit(0, "u", 1, "ok"), admit(0, "u", 1, 429, CONC, 5)],
    ),
    case(
        "null_limits_in_a_partner_row_mean_no_limit",
        "Null means no limit; it does not inherit the `*` value.",
        [row(max_concurrent_uploads=1, requests_per_minute=1), row("p")],
        many(0, "p", 1, 5, "p"),
    ),
    # -- shares of fleet-wide limits ----------------------------------------------------
    case(
        "share_of_concurrency_over_three_servers_rounds_up",
        "ceil(10 / 3) = 4 uploads on this server.",
        [row(max_concurrent_uploads=10, live_server_count=3)],
        many(0, "a", 1, 4, "a") + [admit(0, "a", 1, 429, CONC, 5)],
    ),
    case(
        "share_of_one_over_forty_servers_still_admits_one",
        "ceil(1 / 40) = 1: a limit of 1 still admits one upload somewhere.",
        [row(max_concurrent_uploads=1, requests_per_minute=1, live_server_count=40)],
        [admit(0, "a", 1, "ok"), admit(0, "a", 1, 429, RPM, 60)],
    ),
    case(
        "share_of_rate_and_burst_over_four_servers",
        "rpm 120 -> 30 (2 s interval), burst 10 -> 3.",
        [row(requests_per_minute=120, burst=10, live_server_count=4)],
        many(0, "a", 1, 3, "a") + [admit(0, "a", 1, 429, RPM, 2), admit(2000, "a", 1, "ok")],
    ),
    case(
        "share_of_bytes_and_daily_bytes_over_two_servers",
        "bytes in flight 1001 -> 501, daily 3001 -> 1501.",
        [row(max_bytes_in_flight=1001, daily_upload_bytes=3001, live_server_count=2)],
        [
            admit(0, "a", 501, "ok", lease="a1"),
            admit(0, "a", 1, 429, BYTES, 5),
            release(1, "a1"),
            admit(2, "a", 1000, 429, BYTES, 5),
            admit(3, "a", 501, "ok", lease="a2"),
            release(4, "a2"),
            admit(5, "a", 500, 429, DAILY, 43200),
            admit(6, "a", 499, "ok"),
        ],
    ),
    case(
        "share_follows_live_server_count_on_reload",
        "When the fleet grows from 1 to 2 servers, a cap of 4 becomes 2 here; leases survive the reload.",
        [row(max_concurrent_uploads=4)],
        many(0, "a", 1, 3, "a")
        + [
            table(10, [row(max_concurrent_uploads=4, live_server_count=2, version=2)]),
            admit(20, "a", 1, 429, CONC, 5),
            release(30, "a1"),
            release(31, "a2"),
            admit(40, "a", 1, "ok"),
            admit(50, "a", 1, 429, CONC, 5),
        ],
    ),
    case(
        "live_server_count_zero_counts_as_one",
        "A count below 1 is read as 1.",
        [row(max_concurrent_uploads=2, live_server_count=0)],
        many(0, "a", 1, 2, "a") + [admit(0, "a", 1, 429, CONC, 5)],
    ),
    # -- leases ----------------------------------------------------------------------------
    case(
        "lease_expires_after_the_timeout",
        "A lease not released within the lease timeout (60 s here) ends as timed out and frees its slot.",
        [row(max_concurrent_uploads=1)],
        [
            admit(0, "a", 1, "ok", lease="a1"),
            admit(59_999, "a", 1, 429, CONC, 5),
            admit(60_000, "a", 1, "ok", lease="a2"),
            release(60_001, "a1", released=False),
            counters(
                60_002,
                a={
                    "admitted": 2,
                    "throttled": 1,
                    "timed_out": 1,
                    "uploads_in_flight": 1,
                    "bytes_in_flight": 1,
                },
            ),
        ],
        lease_timeout_seconds=60,
    ),
    case(
        "late_release_counts_as_timed_out",
        "A release at or after the deadline is a no-op; the lease counts as timed out.",
        [row(max_concurrent_uploads=2)],
        [
            admit(0, "a", 7, "ok", lease="a1"),
            release(60_000, "a1", released=False),
            counters(60_001, a={"admitted": 1, "timed_out": 1}),
        ],
        lease_timeout_seconds=60,
    ),
    case(
        "expired_leases_free_bytes_in_flight",
        "Expiry returns the lease's bytes.",
        [row(max_bytes_in_flight=100)],
        [
            admit(0, "a", 100, "ok"),
            admit(29_999, "a", 1, 429, BYTES, 5),
            admit(30_000, "a", 100, "ok"),
            counters(
                30_001,
                a={
                    "admitted": 2,
                    "throttled": 1,
                    "timed_out": 1,
                    "uploads_in_flight": 1,
                    "bytes_in_flight": 100,
                },
            ),
        ],
        lease_timeout_seconds=30,
    ),
    case(
        "counters_reset_after_each_report",
        "Counts are since the previous counters event; in-flight figures are current values.",
        [row(max_concurrent_uploads=1)],
        [
            admit(0, "a", 3, "ok", lease="a1"),
            admit(1, "a", 3, 429, CONC, 5),
            counters(2, a={"admitted": 1, "throttled": 1, "uploads_in_flight": 1, "bytes_in_flight": 3}),
            counters(3, a={"admitted": 0, "throttled": 0, "uploads_in_flight": 1, "bytes_in_flight": 3}),
            release(4, "a1"),
            counters(5, a={"completed": 1, "uploads_in_flight": 0}),
        ],
    ),
    # -- several rules at once --------------------------------------------------------------
    case(
        "longest_wait_decides_the_limit_and_retry_after",
        "Rate (1 s) and concurrency (5 s) both fail: the longer wait wins.",
        [row(requests_per_minute=60, max_concurrent_uploads=1)],
        [
            admit(0, "a", 1, "ok", lease="a1"),
            admit(0, "a", 1, 429, CONC, 5),
            release(100, "a1"),
            admit(200, "a", 1, 429, RPM, 1),
        ],
    ),
    case(
        "daily_wait_beats_rate_wait",
        "Rate (1 s) and daily bytes (until midnight) both fail: daily bytes decide.",
        [row(requests_per_minute=60, daily_upload_bytes=100)],
        [admit(0, "a", 100, "ok"), admit(0, "a", 1, 429, DAILY, 43200)],
    ),
    case(
        "equal_waits_go_to_the_first_rule_in_order",
        "Concurrency and bytes in flight both wait 5 s: concurrency comes first.",
        [row(max_concurrent_uploads=1, max_bytes_in_flight=10)],
        [admit(0, "a", 10, "ok"), admit(0, "a", 10, 429, CONC, 5)],
    ),
    case(
        "headers_track_remaining_quota_across_rules",
        "All four rules: RateLimit shows what is left of each after the decision.",
        [
            row(
                requests_per_minute=60,
                burst=3,
                max_concurrent_uploads=3,
                max_bytes_in_flight=1000,
                daily_upload_bytes=5000,
            )
        ],
        [
            admit(0, "a", 100, "ok", lease="a1"),
            admit(500, "a", 200, "ok"),
            release(600, "a1"),
            admit(700, "a", 300, "ok"),
            admit(800, "a", 1, 429, RPM, 1),
        ],
    ),
    # -- reloads -------------------------------------------------------------------------------
    case(
        "reload_keeps_leases_and_applies_new_limits",
        "Raising a cap takes effect at once; uploads in progress keep their leases.",
        [row(max_concurrent_uploads=1)],
        [
            admit(0, "a", 1, "ok"),
            table(10, [row(max_concurrent_uploads=2, version=2)]),
            admit(20, "a", 1, "ok"),
            admit(30, "a", 1, 429, CONC, 5),
        ],
    ),
    case(
        "removing_a_partner_row_falls_back_to_the_defaults",
        "A deleted row means the `*` defaults apply (the `*` version is bumped).",
        [row(max_concurrent_uploads=1), row("p", max_concurrent_uploads=5)],
        many(0, "p", 1, 2, "p")
        + [table(10, [row(max_concurrent_uploads=1, version=2)]), admit(20, "p", 1, 429, CONC, 5)],
    ),
    case(
        "pause_set_by_a_reload_applies_at_once",
        "A pause published while uploads run rejects the next request; running uploads end normally.",
        [row(), row("p")],
        [
            admit(0, "p", 1, "ok", lease="p1"),
            table(10, [row(version=2), row("p", paused=True, pause_reason="paused by ops", version=2)]),
            admit(20, "p", 1, 503, PAUSED, 60),
            release(30, "p1"),
        ],
    ),
    # Observable on one server, and what leased budgets promise fleet-wide (docs/upload-gate.md).
    case(
        "lowered_concurrency_admits_nothing_until_in_flight_is_below_it",
        "A cap lowered from 3 to 1 while three uploads run: no upload is admitted until fewer than "
        "one is in flight; the running ones end normally.",
        [row(max_concurrent_uploads=3)],
        many(0, "a", 1, 3, "a")
        + [
            table(10, [row(max_concurrent_uploads=1, version=2)]),
            admit(20, "a", 1, 429, CONC, 5),
            release(30, "a1"),
            admit(40, "a", 1, 429, CONC, 5),
            release(50, "a2"),
            admit(60, "a", 1, 429, CONC, 5),
            release(70, "a3"),
            admit(80, "a", 1, "ok"),
        ],
    ),
    case(
        "lowered_bytes_in_flight_waits_for_running_uploads",
        "Bytes in flight lowered from 1000 to 500 with 900 running: the next upload waits until "
        "the running bytes plus its own fit again.",
        [row(max_bytes_in_flight=1000)],
        [
            admit(0, "a", 600, "ok", lease="big"),
            admit(10, "a", 300, "ok", lease="small"),
            table(20, [row(max_bytes_in_flight=500, version=2)]),
            admit(30, "a", 100, 429, BYTES, 5),
            release(40, "big"),
            admit(50, "a", 100, "ok"),
            admit(60, "a", 200, 429, BYTES, 5),
        ],
    ),
    case(
        "pause_during_a_burst_rejects_the_rest_of_the_burst",
        "A pause published in the middle of a burst that the rate and concurrency would still "
        "admit: every later request of the burst gets the 503; lifting it admits again.",
        [row(), row("p", requests_per_minute=600, burst=10, max_concurrent_uploads=10)],
        many(0, "p", 1, 3, "p")
        + [
            table(
                10,
                [
                    row(version=2),
                    row(
                        "p",
                        requests_per_minute=600,
                        burst=10,
                        max_concurrent_uploads=10,
                        paused=True,
                        pause_reason="incident",
                        version=2,
                    ),
                ],
            ),
            admit(11, "p", 1, 503, PAUSED, 60),
            admit(12, "p", 1, 503, PAUSED, 60),
            release(13, "p1"),
            admit(14, "p", 1, 503, PAUSED, 60),
            table(
                20, [row(version=3), row("p", requests_per_minute=600, burst=10, max_concurrent_uploads=10, version=3)]
            ),
            admit(30, "p", 1, "ok"),
        ],
    ),
    # Shadow limits: evaluated on every admit, counted as would_have_throttled, never enforced.
    case(
        "shadow_concurrency_counts_what_it_would_have_throttled_and_rejects_nothing",
        "A tighter shadow cap (1 beside 3): every upload the cap admits is admitted; the shadow one counts.",
        [row(), row("p", max_concurrent_uploads=3, shadow_max_concurrent_uploads=1)],
        many(0, "p", 1, 3, "p")
        + [
            admit(10, "p", 1, 429, CONC, 5),
            counters(20, p={"admitted": 3, "throttled": 1, "would_have_throttled": 3}),
        ],
    ),
    case(
        "shadow_rate_has_its_own_bucket",
        "Shadow 60 rpm with a burst of 1 beside 600 rpm, burst 10: one a second would have passed.",
        [row(), row("p", requests_per_minute=600, burst=10, shadow_requests_per_minute=60, shadow_burst=1)],
        many(0, "p", 1, 3, "p")
        + [
            admit(1000, "p", 1, "ok"),
            admit(1100, "p", 1, "ok"),
            counters(1200, p={"admitted": 5, "would_have_throttled": 3}),
        ],
    ),
    case(
        "shadow_slot_freed_by_a_release",
        "An upload both admitted holds a shadow slot until released; then the shadow cap admits again.",
        [row(), row("p", max_concurrent_uploads=5, shadow_max_concurrent_uploads=1)],
        [
            admit(0, "p", 1, "ok", lease="p1"),
            admit(10, "p", 1, "ok", lease="p2"),
            release(20, "p1"),
            admit(30, "p", 1, "ok"),
            release(40, "p2"),
            counters(50, p={"admitted": 3, "completed": 2, "would_have_throttled": 1}),
        ],
    ),
    case(
        "shadow_daily_bytes",
        "A shadow daily quota of 100 bytes beside 1000: the second 60-byte upload would have been refused.",
        [row(), row("p", daily_upload_bytes=1000, shadow_daily_upload_bytes=100)],
        [
            admit(0, "p", 60, "ok"),
            admit(10, "p", 60, "ok"),
            admit(20, "p", 30, "ok"),
            counters(30, p={"admitted": 3, "would_have_throttled": 1}),
        ],
    ),
    case(
        "shadow_upload_rejected_for_real_still_holds_a_shadow_slot",
        "A looser shadow cap (2 beside 1): the second upload is rejected but would have run, so the "
        "third would have been throttled too.",
        [row(), row("p", max_concurrent_uploads=1, shadow_max_concurrent_uploads=2)],
        [
            admit(0, "p", 1, "ok"),
            admit(10, "p", 1, 429, CONC, 5),
            admit(20, "p", 1, 429, CONC, 5),
            counters(30, p={"admitted": 1, "throttled": 2, "would_have_throttled": 1}),
        ],
    ),
    case(
        "shadow_not_counted_while_paused",
        "A pause rejects in both worlds: nothing counts as would have throttled.",
        [row(), row("p", paused=True, pause_reason="maintenance", shadow_max_concurrent_uploads=1)],
        [
            admit(0, "p", 1, 503, PAUSED, 60),
            admit(10, "p", 1, 503, PAUSED, 60),
            counters(20, p={"paused": 2, "would_have_throttled": 0}),
        ],
    ),
    case(
        "shadow_values_on_the_defaults_row_count_for_direct_users",
        "Shadow values on `*` apply to each client without a row, with its own buckets.",
        [row(shadow_max_concurrent_uploads=1)],
        [
            admit(0, "u", 1, "ok"),
            admit(0, "u", 1, "ok"),
            admit(0, "v", 1, "ok"),
            counters(10, u={"admitted": 2, "would_have_throttled": 1}, v={"admitted": 1, "would_have_throttled": 0}),
        ],
    ),
    # -- load-coupled limits (reduced_limits) -------------------------------------------
    case(
        "reduced_concurrency_rejects_with_503_and_the_lowered_quota",
        "The dashboard lowered p's concurrency from its configured 4 to 2 for load: the third "
        "upload gets 503 temporary reduced capacity, RateLimit-Policy q=2.",
        [row(), row("p", max_concurrent_uploads=2, reduced_limits="max_concurrent_uploads")],
        many(0, "p", 1, 2, "p") + [admit(10, "p", 1, 503, CONC, 5)],
    ),
    case(
        "reduced_bytes_in_flight_rejects_with_503",
        "Bytes in flight lowered for load: over it is a 503 naming the inflight-bytes policy.",
        [row(), row("p", max_bytes_in_flight=100, reduced_limits="max_concurrent_uploads,max_bytes_in_flight")],
        [admit(0, "p", 60, "ok", lease="p1"), admit(10, "p", 60, 503, BYTES, 5)],
    ),
    case(
        "a_limit_not_reduced_still_answers_429_beside_a_reduced_one",
        "Only concurrency is lowered; running over the configured bytes in flight stays a 429.",
        [row(), row("p", max_concurrent_uploads=5, max_bytes_in_flight=100, reduced_limits="max_concurrent_uploads")],
        [admit(0, "p", 60, "ok"), admit(10, "p", 60, 429, BYTES, 5)],
    ),
    case(
        "restored_limit_answers_429_again",
        "Once the dashboard restores the configured value (reduced_limits empty) it is a 429 again.",
        [row(), row("p", max_concurrent_uploads=1, reduced_limits="max_concurrent_uploads")],
        [
            admit(0, "p", 1, "ok"),
            admit(10, "p", 1, 503, CONC, 5),
            table(20, [row(version=2), row("p", max_concurrent_uploads=1, reduced_limits="", version=2)]),
            admit(30, "p", 1, 429, CONC, 5),
        ],
    ),
    # -- bad data (docs/shared-config-table.md, "Bad data") --------------------------------
    case(
        "bad_row_text_false_in_paused_is_skipped_and_the_rest_applies",
        "A text 'false' in `paused` is not a boolean: p's row is skipped (p gets the `*` row) "
        "and q's row still applies.",
        [
            row(max_concurrent_uploads=1),
            row("p", paused="false", max_concurrent_uploads=5),
            row("q", max_concurrent_uploads=2),
        ],
        [
            bad_rows(0, ("p", PAUSED)),
            admit(0, "p", 1, "ok"),
            admit(0, "p", 1, 429, CONC, 5),
            admit(0, "q", 1, "ok"),
            admit(0, "q", 1, "ok"),
            admit(0, "q", 1, 429, CONC, 5),
        ],
    ),
    case(
        "bad_row_real_limit_is_not_truncated",
        "A REAL 4.5 in requests_per_minute is not an integer: the row is skipped, not read as 4.",
        [row(max_concurrent_uploads=1), row("p", requests_per_minute=4.5)],
        [bad_rows(0, ("p", RPM)), admit(0, "p", 1, "ok"), admit(0, "p", 1, 429, CONC, 5)],
    ),
    case(
        "bad_row_negative_limit_is_not_zero",
        "A negative rpm is not 'blocked' (429, Retry-After 60): the row is skipped.",
        [row(), row("p", requests_per_minute=-60, max_concurrent_uploads=-1)],
        [bad_rows(0, ("p", RPM)), admit(0, "p", 1, "ok"), admit(0, "p", 1, "ok")],
    ),
    case(
        "bad_row_unknown_priority",
        "priority is `interactive` or `bulk`; anything else skips the row.",
        [row(max_concurrent_uploads=1), row("p", priority="urgent", max_concurrent_uploads=3)],
        [bad_rows(0, ("p", "priority")), admit(0, "p", 1, "ok"), admit(0, "p", 1, 429, CONC, 5)],
    ),
    case(
        "bad_row_unknown_name_in_reduced_limits",
        "reduced_limits names limit columns; a misspelt one skips the row.",
        [row(max_concurrent_uploads=1), row("p", max_concurrent_uploads=3, reduced_limits="max_concurrent_upload")],
        [bad_rows(0, ("p", "reduced_limits")), admit(0, "p", 1, "ok"), admit(0, "p", 1, 429, CONC, 5)],
    ),
    case(
        "bad_row_absurd_version_does_not_hide_later_changes",
        "A hand-written version of 10^15 skips its row and does not count as the table's version, "
        "so the next change (version 2) is still applied.",
        [row(max_concurrent_uploads=1), row("p", version=10**15)],
        [
            bad_rows(0, ("p", "version")),
            admit(0, "x", 1, "ok"),
            admit(0, "x", 1, 429, CONC, 5),
            table(10, [row(max_concurrent_uploads=2, version=2), row("p", version=10**15)]),
            admit(20, "x", 1, "ok"),
            admit(20, "x", 1, 429, CONC, 5),
        ],
    ),
    case(
        "bad_row_negative_live_server_count",
        "A negative live_server_count skips the row (0 still reads as 1).",
        [row(max_concurrent_uploads=4, live_server_count=2), row("p", max_concurrent_uploads=1, live_server_count=-1)],
        [bad_rows(0, ("p", "live_server_count")), admit(0, "p", 1, "ok"), admit(0, "p", 1, "ok")]
        + [admit(0, "p", 1, 429, CONC, 5)],
    ),
    case(
        "a_row_that_turns_bad_keeps_its_last_good_copy",
        "p's row is rewritten with a REAL burst: the gate keeps p's previous row rather than the `*` row.",
        [row(), row("p", max_concurrent_uploads=1)],
        [
            table(10, [row(version=2), row("p", max_concurrent_uploads=1, burst=2.5, version=2)]),
            bad_rows(20, ("p", "burst")),
            admit(30, "p", 1, "ok"),
            admit(30, "p", 1, 429, CONC, 5),
            table(40, [row(version=3), row("p", max_concurrent_uploads=2, version=3)]),
            bad_rows(50),
            admit(60, "p", 1, "ok"),
            admit(60, "p", 1, 429, CONC, 5),
        ],
    ),
    case(
        "missing_star_row_uses_the_fallback_limits",
        "Without a `*` row, clients without a row get the fallback limits (config), not no limits.",
        [row("p", max_concurrent_uploads=1)],
        [bad_rows(0, ("*", "client_id"))]
        + many(0, "direct-user", 1, 4, "u")
        + [admit(0, "direct-user", 1, 429, CONC, 5), admit(0, "p", 1, "ok"), admit(0, "p", 1, 429, CONC, 5)],
    ),
    case(
        "bad_star_row_uses_the_fallback_limits",
        "A `*` row that cannot be parsed is skipped like any other; its clients get the fallback limits.",
        [row(all_partners_paused="no"), row("p", max_concurrent_uploads=1)],
        [bad_rows(0, ("*", ALL_PAUSED))]
        + many(0, "direct-user", 1, 4, "u")
        + [admit(0, "direct-user", 1, 429, CONC, 5), admit(0, "p", 1, "ok")],
    ),
    # -- RateLimit fields -----------------------------------------------------------------
    case(
        "rate_remaining_never_exceeds_the_quota",
        "rpm 2, burst 5: five at once are admitted, but r never exceeds q = 2.",
        [row(requests_per_minute=2, burst=5)],
        [
            admit(0, "a", 1, "ok", headers={"RateLimit-Policy": '"rpm";q=2;w=60', "RateLimit": '"rpm";r=2;t=30'}),
            admit(0, "a", 1, "ok", headers={"RateLimit-Policy": '"rpm";q=2;w=60', "RateLimit": '"rpm";r=2;t=60'}),
            admit(0, "a", 1, "ok", headers={"RateLimit-Policy": '"rpm";q=2;w=60', "RateLimit": '"rpm";r=2;t=90'}),
        ],
    ),
    case(
        "rate_429_reset_is_never_later_than_retry_after",
        "rpm 6 (10 s interval), burst 3: the fourth waits 10 s for one request, and `t` says the same "
        "(not the 30 s until the bucket is full).",
        [row(requests_per_minute=6, burst=3)],
        many(0, "a", 1, 3, "a")
        + [
            admit(
                0,
                "a",
                1,
                429,
                RPM,
                10,
                headers={"RateLimit-Policy": '"rpm";q=6;w=60', "RateLimit": '"rpm";r=0;t=10', "Retry-After": "10"},
            ),
            admit(
                2500,
                "a",
                1,
                429,
                RPM,
                8,
                headers={"RateLimit-Policy": '"rpm";q=6;w=60', "RateLimit": '"rpm";r=0;t=8', "Retry-After": "8"},
            ),
        ],
    ),
    case(
        "quotas_past_the_largest_structured_fields_integer_are_capped",
        "Structured Fields integers have at most 15 digits: a daily quota of 2^63 - 1 bytes and "
        "10^15 bytes in flight are written as 999999999999999.",
        [row(max_bytes_in_flight=10**15, daily_upload_bytes=2**63 - 1)],
        [
            admit(
                0,
                "a",
                10,
                "ok",
                headers={
                    "RateLimit-Policy": '"inflight-bytes";q=999999999999999;qu="content-bytes", '
                    '"daily-bytes";q=999999999999999;qu="content-bytes";w=86400',
                    "RateLimit": '"inflight-bytes";r=999999999999990, "daily-bytes";r=999999999999999;t=43200',
                },
            )
        ],
    ),
    # -- plausible misreadings of docs/upload-gate.md that the earlier cases let pass -----
    case(
        "share_divides_by_the_star_rows_server_count_not_the_clients_own",
        "N is the `*` row's live_server_count (4): p's own row carries a stale 1, so p's cap of 4 "
        "is 1 on this server, not 4.",
        [row(live_server_count=4), row("p", max_concurrent_uploads=4, live_server_count=1)],
        [admit(0, "p", 1, "ok"), admit(0, "p", 1, 429, CONC, 5)],
    ),
    case(
        "shadow_rate_keeps_the_enforced_burst",
        "A shadow rate without shadow_burst keeps the enforced burst (5), not a burst of 1: five "
        "at once would have passed in the shadow world too.",
        [row(), row("p", requests_per_minute=600, burst=5, shadow_requests_per_minute=60)],
        many(0, "p", 1, 5, "p")
        + [
            admit(0, "p", 1, 429, RPM, 1),
            counters(10, p={"admitted": 5, "throttled": 1, "would_have_throttled": 1}),
        ],
    ),
    case(
        "shadow_only_lease_expiry_is_not_a_timed_out_upload",
        "An upload only the shadow limits admitted never ran: its shadow lease expires without counting as timed_out.",
        [row(), row("p", max_concurrent_uploads=1, shadow_max_concurrent_uploads=2)],
        [
            admit(0, "p", 1, "ok", lease="p1"),
            admit(10, "p", 1, 429, CONC, 5),
            release(20, "p1"),
            counters(61_000, p={"admitted": 1, "throttled": 1, "completed": 1, "timed_out": 0}),
        ],
        lease_timeout_seconds=60,
    ),
    case(
        "enforced_lease_expiry_frees_its_shadow_slot",
        "An upload admitted in both worlds that expires frees its shadow slot too: the next upload "
        "would not have been throttled by the shadow cap of 1.",
        [row(), row("p", max_concurrent_uploads=5, shadow_max_concurrent_uploads=1)],
        [
            admit(0, "p", 1, "ok"),
            admit(60_000, "p", 1, "ok"),
            counters(
                60_010,
                p={"admitted": 2, "timed_out": 1, "uploads_in_flight": 1, "bytes_in_flight": 1},
            ),
        ],
        lease_timeout_seconds=60,
    ),
    case(
        "reload_keeps_rate_state_and_day_bytes",
        "A reload (even of the same limits) keeps the GCRA state and the bytes counted today.",
        [row(requests_per_minute=60, daily_upload_bytes=100)],
        [
            admit(0, "a", 100, "ok"),
            table(10, [row(requests_per_minute=60, daily_upload_bytes=100, version=2)]),
            admit(20, "a", 0, 429, RPM, 1),
            admit(1000, "a", 1, 429, DAILY, 43199),
        ],
    ),
    case(
        "deleting_and_re_adding_a_row_keeps_the_clients_state",
        "p's row is deleted (p falls back to `*`, no limits) and added again: p's rate state and "
        "day bytes are those of the client id, not of the row.",
        [row(), row("p", requests_per_minute=1, daily_upload_bytes=100)],
        [
            admit(0, "p", 100, "ok"),
            table(10, [row(version=2)]),
            admit(20, "p", 1, "ok"),
            table(30, [row(version=3), row("p", requests_per_minute=1, daily_upload_bytes=100, version=3)]),
            admit(40, "p", 0, 429, RPM, 60),
            admit(60_000, "p", 1, 429, DAILY, 43140),
        ],
    ),
    case(
        "forgetting_idle_clients_keeps_their_day_bytes",
        "A client with nothing in flight is forgotten after a report only once it has counted no "
        "bytes today: its daily quota stays used up.",
        [row(daily_upload_bytes=100)],
        [
            admit(0, "u", 100, "ok", lease="u1"),
            release(10, "u1"),
            counters(20, u={"admitted": 1, "completed": 1}),
            counters(30),
            admit(40, "u", 1, 429, DAILY, 43200),
        ],
    ),
]
