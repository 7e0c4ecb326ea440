"""Leased budgets: four gates sharing one real redis-server hold a fleet-wide limit exactly.

The gates share one manual clock and refill only when a test says so (start=False), so
every interleaving is one the test chose; the coordinator is a real redis-server.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from gate_vectors_build import VECTORS_PATH
from gate_vectors_play import gate_for
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from upload_gate import ManualClock, StaticSource, UploadGate
from upload_gate.client import SidecarClient
from upload_gate.server import GateService, SidecarServer

SLICE_TTL_SECONDS = 10.0
_prefixes = itertools.count(1)


def star(**values) -> dict:
    return {"client_id": "*", "version": 1, "live_server_count": 4, **values}


class Fleet:
    """Four leased gates on one clock and one coordinator, each with its own copy of the table."""

    def __init__(self, rows: list[dict], redis_url: str, clock: ManualClock, count: int = 4) -> None:
        prefix = f"leased{next(_prefixes)}-{os.getpid()}"
        self.clock = clock
        self.sources = [StaticSource(rows) for _ in range(count)]
        self.gates = [
            UploadGate(
                source=source,
                clock=clock,
                start=False,
                jitter_fraction=0,
                leased_budgets=True,
                redis_url=redis_url,
                redis_key_prefix=prefix,
                redis_timeout_seconds=1.0,
                server_id=f"server-{index}",
                slice_ttl_seconds=SLICE_TTL_SECONDS,
            )
            for index, source in enumerate(self.sources)
        ]
        self.leases: list[list] = [[] for _ in self.gates]

    def admit(self, index: int, size_bytes: int = 1, client: str = "partner") -> bool:
        decision = self.gates[index].admit(client, size_bytes)
        if decision.admitted:
            self.leases[index].append(decision.lease)
        return decision.admitted

    def admit_all_it_can(self, index: int, size_bytes: int = 1) -> int:
        admitted = 0
        while self.admit(index, size_bytes):
            admitted += 1
        return admitted

    def release(self, index: int, count: int = 1) -> None:
        for _ in range(min(count, len(self.leases[index]))):
            self.gates[index].release(self.leases[index].pop(0))

    def refill(self, *indexes: int) -> None:
        for index in indexes or range(len(self.gates)):
            self.gates[index].refill_budgets_now()

    def set_rows(self, rows: list[dict]) -> None:
        """The table changes and every gate has read it (the propagation time has passed)."""
        for source, gate in zip(self.sources, self.gates, strict=True):
            source.set_rows(rows)
            assert gate.refresh_now()

    def uploads_in_flight(self) -> int:
        return sum(len(leases) for leases in self.leases)

    def bytes_in_flight(self) -> int:
        return sum(lease.size_bytes for leases in self.leases for lease in leases)

    def close(self) -> None:
        for gate in self.gates:
            gate.close()


def fill(fleet: Fleet, *indexes: int, rounds: int = 4) -> None:
    """The servers named admit all they can, refilling between rounds (a sustained burst)."""
    for _ in range(rounds):
        for index in indexes:
            fleet.admit_all_it_can(index)
        fleet.refill(*indexes)
    for index in indexes:
        fleet.admit_all_it_can(index)


@pytest.fixture
def make_fleet(redis_server, clock):
    fleets: list[Fleet] = []

    def make(rows: list[dict], url: str | None = None) -> Fleet:
        fleet = Fleet(rows, url or redis_server.url, clock)
        fleets.append(fleet)
        return fleet

    yield make
    for fleet in fleets:
        fleet.close()


def test_leased_budgets_need_a_coordinator():
    with pytest.raises(ValueError, match="coordinator"):
        UploadGate(source=StaticSource([star()]), start=False, leased_budgets=True)


def test_a_busy_server_gets_the_concurrency_the_idle_servers_do_not_use(make_fleet):
    fleet = make_fleet([star(max_concurrent_uploads=8)])
    assert fleet.gates[0].mode == "leased"
    # Its first slice is the share (8 over 4 servers); refills bring the rest of the limit.
    assert fleet.admit_all_it_can(0) == 2
    for _ in range(3):
        fleet.refill(0)
        fleet.admit_all_it_can(0)
    assert fleet.uploads_in_flight() == 8
    # The fleet is full: nobody else admits, whatever they ask for.
    for index in (1, 2, 3):
        assert not fleet.admit(index)
    fleet.refill()
    assert not any(fleet.admit(index) for index in (1, 2, 3))


def test_slots_move_to_the_server_whose_uploads_need_them(make_fleet):
    fleet = make_fleet([star(max_concurrent_uploads=8)])
    fill(fleet, 0)
    fleet.release(0, 6)  # its uploads end: two left in flight
    assert not fleet.admit(1)  # server 1 has demand now
    fleet.refill(1)  # server 1's demand reaches the coordinator
    for _ in range(4):
        # Holding idle slots, server 0 asks again once a second, and drains to its fair part.
        fleet.clock.advance(1.0)
        fleet.refill(0)
        fill(fleet, 1, rounds=2)
    # Server 0 keeps its two uploads and one spare slot; server 1 has all the rest.
    assert (len(fleet.leases[0]), len(fleet.leases[1])) == (2, 5)


def test_four_servers_admit_no_more_than_the_burst_when_no_time_passes(make_fleet):
    fleet = make_fleet([star(requests_per_minute=60, burst=10)])
    admitted = 0
    for _ in range(5):
        for index in range(4):
            admitted += fleet.admit_all_it_can(index)
        fleet.refill()
    assert admitted == 10
    fleet.clock.advance(1.0)  # one more conforms fleet-wide per second
    fleet.refill()  # the servers turned uploads away: they ask again once one conforms
    assert sum(fleet.admit_all_it_can(index) for index in range(4)) == 1


def test_the_day_s_bytes_are_never_admitted_twice_across_servers(make_fleet):
    fleet = make_fleet([star(daily_upload_bytes=10_000)])
    admitted_bytes = 0
    for _ in range(4):
        for index in range(4):
            admitted_bytes += 700 * fleet.admit_all_it_can(index, 700)
        fleet.refill()
    assert 10_000 - 700 * 4 < admitted_bytes <= 10_000


def test_a_pause_during_a_burst_stops_every_server_at_once(make_fleet):
    rows = [star(max_concurrent_uploads=40, requests_per_minute=6000, burst=100)]
    fleet = make_fleet(rows)
    for index in range(4):
        fleet.admit(index)
    fleet.refill()
    assert all(fleet.admit(index) for index in range(4))
    fleet.set_rows([{**rows[0], "paused": True, "pause_reason": "incident", "version": 2}])
    # No refill, no slice expiry: the table read locally is enough.
    for index in range(4):
        decision = fleet.gates[index].admit("partner", 1)
        assert (decision.status, decision.limit) == (503, "paused")
    fleet.refill()
    assert not any(fleet.admit(index) for index in range(4))


def test_a_lowered_limit_admits_nothing_until_the_fleet_is_below_it(make_fleet):
    rows = [star(max_concurrent_uploads=8)]
    fleet = make_fleet(rows)
    fill(fleet, 0, 1)
    assert fleet.uploads_in_flight() == 8
    big, small = sorted((0, 1), key=lambda index: -len(fleet.leases[index]))
    assert len(fleet.leases[small]) >= 2
    fleet.set_rows([{**rows[0], "max_concurrent_uploads": 4, "version": 2}])
    # The reload voids what the slices would still admit, before any refill.
    fleet.release(small, 1)
    assert not any(fleet.admit(index) for index in range(4))
    # Refilled under the new limit, the small server still waits for the big one's uploads.
    fleet.refill()
    fleet.release(small, 1)
    fleet.refill()
    assert not any(fleet.admit(index) for index in range(4))
    fleet.release(big, len(fleet.leases[big]) - 2)  # the fleet is below the limit again
    for _ in range(3):
        fleet.refill()
        for index in range(4):
            fleet.admit_all_it_can(index)
    assert fleet.uploads_in_flight() == 4


def test_a_dead_server_s_slice_comes_back_after_the_slice_expiry(make_fleet):
    fleet = make_fleet([star(max_concurrent_uploads=8)])
    fill(fleet, 0)
    assert len(fleet.leases[0]) == 8
    # Server 0 dies: it never releases, renews or gives back again.
    dead = fleet.gates.pop(0)
    fleet.leases.pop(0)
    fleet.clock.advance(SLICE_TTL_SECONDS / 2)
    fleet.refill()
    assert not fleet.admit(0)
    fleet.clock.advance(SLICE_TTL_SECONDS / 2)
    fill(fleet, 0, 1, 2)
    assert fleet.uploads_in_flight() == 8
    dead._leased._stop.set()  # closed without giving anything back, as a crash would


def test_coordinator_down_falls_back_to_shares_and_says_so_then_leases_again(own_redis_server, make_fleet):
    fleet = make_fleet([star(max_concurrent_uploads=8)], url=own_redis_server.url)
    fill(fleet, 0)
    assert len(fleet.leases[0]) == 8
    own_redis_server.stop()
    fleet.refill()
    for index in (1, 2, 3):  # their first decision finds the coordinator gone: decided on shares
        fleet.admit(index)
    assert {gate.mode for gate in fleet.gates} == {"share (coordinator unavailable)"}
    # On shares, each server admits ceil(8 / 4) = 2 of its own, counting what it has in flight.
    assert fleet.admit_all_it_can(1) == 1
    assert fleet.admit_all_it_can(0) == 0
    own_redis_server.start()
    fleet.refill()
    assert {gate.mode for gate in fleet.gates} == {"leased"}
    fleet.release(0, 8)
    for _ in range(3):
        fleet.refill()
        for index in range(4):
            fleet.admit_all_it_can(index)
    assert fleet.uploads_in_flight() == 8


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("admit"), st.integers(0, 3), st.sampled_from([1, 300, 700])),
        st.tuples(st.just("release"), st.integers(0, 3), st.integers(1, 3)),
        st.tuples(st.just("refill"), st.integers(0, 3), st.just(0)),
        st.tuples(st.just("advance"), st.just(0), st.sampled_from([10, 2_000, 6_000])),
        st.tuples(st.just("limit"), st.integers(1, 9), st.integers(500, 3_000)),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS, first_limit=st.integers(1, 9))
@example(operations=[("admit", 0, 1), ("admit", 0, 1), ("refill", 0, 0)] + [("admit", 0, 1)] * 4, first_limit=9)
def test_no_interleaving_of_four_servers_admits_above_the_fleet_wide_limits(redis_server, operations, first_limit):
    clock = ManualClock()
    # 600 a minute is one every 100 ms; the burst of 3 is the most that may come at once.
    row = star(max_concurrent_uploads=first_limit, max_bytes_in_flight=2_000, requests_per_minute=600, burst=3)
    fleet = Fleet([row], redis_server.url, clock)
    started_ns = clock.monotonic_ns()
    admitted = 0
    version = 1
    try:
        for op, index, value in operations:
            if op == "admit":
                if fleet.admit(index, value):
                    admitted += 1
                    assert fleet.uploads_in_flight() <= row["max_concurrent_uploads"]
                    assert fleet.bytes_in_flight() <= row["max_bytes_in_flight"]
                    # The GCRA bound from the start, when no server held a token yet.
                    assert admitted <= 3 + (clock.monotonic_ns() - started_ns) // 100_000_000
            elif op == "release":
                fleet.release(index, value)
            elif op == "refill":
                fleet.refill(index)
            elif op == "advance":
                clock.advance(value / 1000)
            else:
                version += 1
                row = {**row, "max_concurrent_uploads": index, "max_bytes_in_flight": value, "version": version}
                fleet.set_rows([row])
    finally:
        fleet.close()


def test_two_sidecars_configured_for_leased_budgets_share_one_fleet_wide_limit(redis_server, clock):
    socket_dir = Path(tempfile.mkdtemp(prefix="ugl-"))  # a Unix socket path must stay short
    fleet = Fleet([star(max_concurrent_uploads=3, live_server_count=2)], redis_server.url, clock, count=2)
    servers = [
        SidecarServer(GateService(gate), socket_path=str(socket_dir / f"gate{index}.sock"))
        for index, gate in enumerate(fleet.gates)
    ]
    try:
        for server in servers:
            server.start()
        clients = [SidecarClient(str(socket_dir / f"gate{index}.sock")) for index in range(2)]
        assert {client.health()["mode"] for client in clients} == {"leased"}
        admitted = []
        for _ in range(3):
            for client in clients:
                answer = client.admit("partner", 10)
                if answer["admitted"]:
                    admitted.append(answer)
            fleet.refill()
        # Three fleet-wide, wherever they landed; on shares it would be ceil(3 / 2) on each: four.
        assert len(admitted) == 3
        assert not any(client.admit("partner", 10)["admitted"] for client in clients)
    finally:
        for server in servers:
            server.close()
        fleet.close()
        shutil.rmtree(socket_dir, ignore_errors=True)


VECTORS = json.loads(VECTORS_PATH.read_text())["cases"]
ONE_SERVER_CASES = [
    case
    for case in VECTORS
    if all(
        (row.get("live_server_count") or 1) <= 1
        for rows in [case["rows"], *(event["rows"] for event in case["events"] if event["op"] == "table")]
        for row in rows
    )
    and not any(key.startswith("shadow_") and value is not None for row in case["rows"] for key, value in row.items())
]


@pytest.mark.parametrize("case", ONE_SERVER_CASES, ids=[case["name"] for case in ONE_SERVER_CASES])
def test_a_lone_server_on_leased_budgets_decides_as_the_vector_says(case, redis_server):
    """The outcome of every decision (admitted, status, limit) and the counters; not the
    header fields or Retry-After: on leased budgets they describe this server's slice."""
    prefix = f"leased-vectors{next(_prefixes)}-{os.getpid()}"
    gate, clock, source = gate_for(case, leased_budgets=True, redis_url=redis_server.url, redis_key_prefix=prefix)
    leases = {}
    elapsed_ms = 0
    try:
        for index, event in enumerate(case["events"]):
            clock.advance(microseconds=(event["t_ms"] - elapsed_ms) * 1000)
            elapsed_ms = event["t_ms"]
            where = f"{case['name']} event {index} ({event['op']} at {event['t_ms']} ms)"
            expect = event.get("expect")
            if event["op"] == "admit":
                gate.refill_budgets_now()  # the background refill, between two decisions
                decision = gate.admit(event["client"], event["size_bytes"])
                got = (decision.admitted, decision.status, decision.limit)
                assert got == (expect["admitted"], expect["status"], expect["limit"]), where
                if "lease" in event:
                    leases[event["lease"]] = decision.lease
            elif event["op"] == "release":
                assert gate.release(leases[event["lease"]], event["outcome"]) == expect["released"], where
            elif event["op"] == "table":
                source.set_rows(event["rows"])
                assert gate.refresh_now(), where
            elif event["op"] == "counters":
                assert gate.snapshot_counters(reset=True)["clients"] == expect["clients"], where
        assert gate.mode == "leased"
    finally:
        gate.close()


def test_the_headers_show_the_fleet_wide_quota_and_what_this_server_can_still_admit(make_fleet):
    fleet = make_fleet([star(max_concurrent_uploads=8, requests_per_minute=60, burst=20)])
    headers = fleet.gates[0].admit("partner", 1).headers()
    # Its first slice is the share: 2 of the 8 slots and 5 of the 20 tokens; one of each is used.
    assert headers["RateLimit-Policy"] == '"rpm";q=60;w=60, "inflight";q=8;qu="concurrent-requests"'
    assert headers["RateLimit"].endswith('"inflight";r=1')
    assert headers["RateLimit"].startswith('"rpm";r=4;')


def test_the_sidecar_refuses_leased_budgets_without_a_coordinator():
    result = subprocess.run(
        [sys.executable, "-m", "upload_gate", "serve", "--port", "1", "--leased-budgets"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--leased-budgets needs --redis-url" in result.stderr
