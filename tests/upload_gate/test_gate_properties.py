"""Property-based tests: random limits and random sequences of uploads.

The GCRA bound we prove (docs/upload-gate.md, "Why the rate bound holds") and test:
with interval T = ceil(60 000 000 / rpm) us and burst b, any closed time window of
length W us contains at most b + floor(W / T) admitted requests of one client; since
T >= 60 s / rpm this is also at most b + floor(W * rpm / 60 s).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from gate_reference_model import ReferenceGate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from upload_gate import ManualClock, StaticSource, UploadGate, share

START = datetime(2025, 3, 10, 23, 58, tzinfo=UTC)  # close to midnight: days roll over
CLIENTS = ["a", "b", "p"]
DAY_US = 86_400_000_000

optional_small = st.one_of(st.none(), st.integers(0, 6))
limits = st.fixed_dictionaries(
    {
        "requests_per_minute": st.one_of(st.none(), st.integers(0, 600)),
        "burst": optional_small,
        "max_concurrent_uploads": optional_small,
        "max_bytes_in_flight": st.one_of(st.none(), st.integers(0, 1500)),
        "daily_upload_bytes": st.one_of(st.none(), st.integers(0, 5000)),
    }
)
step = st.one_of(
    st.tuples(st.just("admit"), st.sampled_from(CLIENTS), st.integers(0, 600), st.integers(0, 2_000_000)),
    st.tuples(
        st.just("release"),
        st.integers(0, 50),
        st.sampled_from(["completed", "failed", "timed_out"]),
        st.integers(0, 2_000_000),
    ),
    st.tuples(st.just("wait"), st.just(""), st.just(0), st.sampled_from([10_000_000, 61_000_000, 3_600_000_000])),
)
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_rows(star: dict, partner: dict, servers: int, paused: bool) -> list[dict]:
    return [
        {"client_id": "*", "version": 1, "live_server_count": servers, **star},
        {
            "client_id": "p",
            "version": 1,
            "paused": paused,
            "pause_reason": "paused" if paused else "",
            **partner,
        },
    ]


def run(rows: list[dict], steps: list[tuple]):
    """Play steps on a gate and on the reference model; yield (step, decision, expected, gate)."""
    clock = ManualClock(START)
    gate = UploadGate(source=StaticSource(rows), clock=clock, start=False, jitter_fraction=0, lease_timeout_seconds=120)
    model = ReferenceGate(rows, lease_timeout_seconds=120)
    leases: list = []
    elapsed_us = 0
    start_wall = clock.wall_ns() // 1000
    try:
        for kind, subject, amount, dt_us in steps:
            clock.advance(microseconds=dt_us)
            elapsed_us += dt_us
            if kind == "admit":
                decision = gate.admit(subject, amount)
                expected = model.admit(subject, amount, elapsed_us, start_wall + elapsed_us, str(len(leases)))
                leases.append(decision.lease)
                yield ("admit", subject, amount, elapsed_us), decision, expected, gate
            elif kind == "release" and leases and leases[subject % len(leases)] is not None:
                index = subject % len(leases)
                released = gate.release(leases[index], amount)
                assert released == model.release(str(index), amount, elapsed_us)
    finally:
        gate.close()


def check_caps(gate: UploadGate, rows: list[dict]) -> None:
    servers = max(1, rows[0]["live_server_count"])
    for client, counts in gate.snapshot_counters(reset=False)["clients"].items():
        row = rows[1] if client == "p" else rows[0]
        concurrency = share(row.get("max_concurrent_uploads"), servers)
        bytes_cap = share(row.get("max_bytes_in_flight"), servers)
        assert concurrency is None or counts["uploads_in_flight"] <= concurrency
        assert bytes_cap is None or counts["bytes_in_flight"] <= bytes_cap


@PROPERTY_SETTINGS
@given(star=limits, partner=limits, servers=st.integers(1, 4), steps=st.lists(step, max_size=60))
def test_leases_and_bytes_in_flight_never_exceed_the_caps(star, partner, servers, steps):
    rows = make_rows(star, partner, servers, paused=False)
    for _event, _decision, _expected, gate in run(rows, steps):
        check_caps(gate, rows)


@PROPERTY_SETTINGS
@given(
    rpm=st.integers(1, 1200),
    burst=st.one_of(st.none(), st.integers(0, 8)),
    servers=st.integers(1, 3),
    gaps=st.lists(st.one_of(st.integers(0, 50_000), st.integers(0, 20_000_000)), min_size=1, max_size=120),
)
def test_admitted_requests_in_any_window_never_exceed_burst_plus_rate_times_window(rpm, burst, servers, gaps):
    rows = make_rows({"requests_per_minute": rpm, "burst": burst}, {}, servers, paused=False)
    steps = [("admit", "a", 1, gap) for gap in gaps]
    admitted_at = [event[3] for event, decision, _, _ in run(rows, steps) if decision.admitted]
    rate = share(rpm, servers)
    bucket = share(max(1, burst or 1), servers)
    interval_us = -(-60_000_000 // rate)
    for first in range(len(admitted_at)):
        for last in range(first, len(admitted_at)):
            window_us = admitted_at[last] - admitted_at[first]
            count = last - first + 1
            assert count <= bucket + window_us // interval_us
            assert count <= bucket + window_us * rate // 60_000_000


def test_the_rate_bound_is_tight():
    """A client sending as fast as allowed gets exactly burst + floor(W / T) in a window."""
    rows = make_rows({"requests_per_minute": 60, "burst": 3}, {}, 1, paused=False)
    steps = [("admit", "a", 1, 0)] * 3 + [("admit", "a", 1, 1_000_000)] * 10
    admitted = [event[3] for event, decision, _, _ in run(rows, steps) if decision.admitted]
    assert len(admitted) == 13 and admitted[-1] - admitted[0] == 10_000_000  # 3 + floor(10 s / 1 s)


@PROPERTY_SETTINGS
@given(
    star=limits,
    partner=limits,
    servers=st.integers(1, 4),
    steps=st.lists(step, max_size=60),
    pause_kind=st.sampled_from(["own", "global", "both"]),
)
def test_paused_client_is_never_admitted(star, partner, servers, steps, pause_kind):
    rows = make_rows(star, partner, servers, paused=pause_kind in ("own", "both"))
    if pause_kind in ("global", "both"):
        rows[0].update(
            all_partners_paused=True,
            all_partners_pause_reason="recovering",
            all_partners_resume_at=(START + timedelta(days=30)).isoformat(),
        )
    steps = [("admit", "p", size, dt) if kind == "admit" else (kind, a, size, dt) for kind, a, size, dt in steps]
    for _event, decision, _expected, _gate in run(rows, steps):
        assert not decision.admitted and decision.status == 503


@PROPERTY_SETTINGS
@given(star=limits, partner=limits, servers=st.integers(1, 4), steps=st.lists(step, max_size=60))
def test_daily_bytes_admitted_per_utc_day_never_exceed_the_share(star, partner, servers, steps):
    rows = make_rows(star, partner, servers, paused=False)
    start_us = int(START.timestamp()) * 1_000_000
    per_day: dict = defaultdict(int)
    for (_, client, size, elapsed_us), decision, _, _ in run(rows, steps):
        if decision.admitted:
            per_day[client, (start_us + elapsed_us) // DAY_US] += size
    for (client, _day), total in per_day.items():
        cap = share((rows[1] if client == "p" else rows[0]).get("daily_upload_bytes"), servers)
        assert cap is None or total <= cap


@PROPERTY_SETTINGS
@given(
    star=limits,
    partner=limits,
    servers=st.integers(1, 4),
    steps=st.lists(step, max_size=60),
    paused=st.booleans(),
)
def test_every_decision_matches_the_naive_reference_model(star, partner, servers, steps, paused):
    rows = make_rows(star, partner, servers, paused=paused)
    for event, decision, expected, _gate in run(rows, steps):
        got = {
            "admitted": decision.admitted,
            "status": decision.status,
            "limit": decision.limit,
            "retry_after_seconds": decision.retry_after_seconds,
            "headers": decision.headers(),
        }
        if "reason" in expected:
            got["reason"] = decision.reason
        assert got == expected, event
