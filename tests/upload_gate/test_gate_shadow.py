"""Shadow limits: counted as "would have throttled", never enforced.

The same random request sequence goes through three gates: one enforcing the limits with
shadow values beside them, one enforcing the shadow values themselves, and one enforcing
the limits without any shadow. The first must decide exactly like the third (shadow never
rejects) and count exactly what the second rejected.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from upload_gate import ManualClock, StaticSource, UploadGate
from upload_gate.limits import shadow_row
from upload_gate.table import row_from_mapping

START = datetime(2025, 3, 10, 23, 58, tzinfo=UTC)  # close to midnight: days roll over
LIMIT_NAMES = ("requests_per_minute", "burst", "max_concurrent_uploads", "max_bytes_in_flight", "daily_upload_bytes")
optional_small = st.one_of(st.none(), st.integers(0, 5))
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
    st.tuples(st.just("admit"), st.integers(0, 600), st.just(""), st.integers(0, 2_000_000)),
    st.tuples(
        st.just("release"),
        st.integers(0, 60),
        st.sampled_from(["completed", "failed", "timed_out"]),
        st.integers(0, 2_000_000),
    ),
    st.tuples(st.just("wait"), st.just(0), st.just(""), st.sampled_from([10_000_000, 61_000_000, 3_600_000_000])),
)


class Replay:
    """One gate over a ManualClock, and the lease (real or shadow-only) of each admit."""

    def __init__(self, row: dict, servers: int) -> None:
        self.clock = ManualClock(START)
        star = {"client_id": "*", "version": 1, "live_server_count": servers}
        self.gate = UploadGate(
            source=StaticSource([star, {"client_id": "p", "version": 1, **row}]),
            clock=self.clock,
            start=False,
            jitter_fraction=0,
            lease_timeout_seconds=120,
        )
        self.leases: list = []
        self.decisions: list = []

    def play(self, kind, amount, outcome, dt_us) -> None:
        self.clock.advance(microseconds=dt_us)
        if kind == "admit":
            decision = self.gate.admit("p", amount)
            self.decisions.append((decision.status, decision.limit))
            self.leases.append(decision.lease or decision.shadow_lease)
        elif kind == "release" and self.leases:
            lease = self.leases[amount % len(self.leases)]
            if lease is None:
                return
            if lease.__class__.__name__ == "ShadowLease":
                self.gate.release_shadow(lease)
            else:
                self.gate.release(lease, outcome)

    def count(self, name: str) -> int:
        self.clock.advance(0)
        return self.gate.snapshot_counters(reset=False)["clients"].get("p", {}).get(name, 0)


def shadow_columns(shadow: dict) -> dict:
    return {f"shadow_{name}": value for name, value in shadow.items()}


NO_LIMITS = dict.fromkeys(LIMIT_NAMES)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    enforced=limits,
    shadow=limits,
    servers=st.integers(1, 3),
    steps=st.lists(step, max_size=60),
)
@example(  # the shadow world holds an upload the enforced one rejected
    enforced={**NO_LIMITS, "max_concurrent_uploads": 1},
    shadow={**NO_LIMITS, "max_concurrent_uploads": 2, "requests_per_minute": 60},
    servers=1,
    steps=[("admit", 5, "", 0), ("admit", 5, "", 0), ("release", 0, "completed", 1), ("admit", 5, "", 0)]
    + [("admit", 5, "", 2_000_000)] * 3
    + [("release", 1, "completed", 0), ("admit", 5, "", 1_000_000)],
)
def test_would_have_throttled_equals_what_enforcing_the_shadow_values_rejects(enforced, shadow, servers, steps):
    with_shadow = Replay({**enforced, **shadow_columns(shadow)}, servers)
    row = row_from_mapping({"client_id": "p", **enforced, **shadow_columns(shadow)})
    as_enforced = {name: getattr(shadow_row(row), name) for name in LIMIT_NAMES}
    enforcing_shadow = Replay(as_enforced, servers)
    without_shadow = Replay(enforced, servers)
    for event in steps:
        for replay in (with_shadow, enforcing_shadow, without_shadow):
            replay.play(*event)
    try:
        # Shadow never rejects: every decision is the one made without shadow values.
        assert with_shadow.decisions == without_shadow.decisions
        if any(value is not None for value in shadow.values()):
            assert with_shadow.count("would_have_throttled") == enforcing_shadow.count("throttled")
        else:  # no shadow values: nothing is evaluated, nothing counted
            assert with_shadow.count("would_have_throttled") == 0
    finally:
        for replay in (with_shadow, enforcing_shadow, without_shadow):
            replay.gate.close()


def test_a_tighter_shadow_concurrency_counts_without_rejecting(clock):
    gate = UploadGate(
        source=StaticSource(
            [
                {"client_id": "*", "version": 1},
                {"client_id": "p", "version": 1, "max_concurrent_uploads": 5, "shadow_max_concurrent_uploads": 2},
            ]
        ),
        clock=clock,
        start=False,
    )
    decisions = [gate.admit("p", 10) for _ in range(4)]
    assert all(decision.admitted for decision in decisions)
    counts = gate.snapshot_counters()["clients"]["p"]
    assert counts["admitted"] == 4
    assert counts["throttled"] == 0
    assert counts["would_have_throttled"] == 2
    # Ending an upload the shadow world held frees a shadow slot: the next one would pass.
    gate.release(decisions[0].lease)
    gate.admit("p", 10)
    assert "would_have_throttled" not in gate.snapshot_counters()["clients"]["p"]
    gate.close()


def test_clients_without_shadow_values_report_no_shadow_count(clock):
    gate = UploadGate(
        source=StaticSource([{"client_id": "*", "version": 1, "max_concurrent_uploads": 1}]),
        clock=clock,
        start=False,
    )
    gate.admit("u", 1)
    gate.admit("u", 1)
    counts = gate.snapshot_counters()["clients"]["u"]
    assert counts["throttled"] == 1
    assert "would_have_throttled" not in counts
    assert gate.client_config("u")["shadow_server_share"] is None
    gate.close()


def test_an_upload_only_the_shadow_limits_admit_holds_a_shadow_slot_until_it_ends(clock):
    # Enforced: 1 at a time; shadow: a looser 2. The second upload is rejected for real but
    # would have run under the shadow limits, so the third would have been throttled.
    gate = UploadGate(
        source=StaticSource(
            [
                {"client_id": "*", "version": 1},
                {"client_id": "p", "version": 1, "max_concurrent_uploads": 1, "shadow_max_concurrent_uploads": 2},
            ]
        ),
        clock=clock,
        start=False,
        lease_timeout_seconds=60,
    )
    first, second, third = (gate.admit("p", 10) for _ in range(3))
    assert first.admitted and not second.admitted and not third.admitted
    assert second.shadow_lease is not None and third.shadow_lease is None
    assert gate.snapshot_counters()["clients"]["p"]["would_have_throttled"] == 1
    assert gate.release_shadow(second.shadow_lease)
    assert second.shadow_lease.done
    assert not gate.admit("p", 10).admitted  # still enforced: the first upload runs
    counts = gate.snapshot_counters()["clients"]["p"]
    assert "would_have_throttled" not in counts  # the shadow world had a free slot again
    # Unreleased shadow-only leases end at the lease timeout, like real ones.
    clock.advance(61)
    assert gate.admit("p", 10).admitted
    assert gate.admit("p", 10).shadow_lease is not None
    gate.close()
