"""The simulated fleet's load model: what it must do whatever its parameters."""

from dataclasses import replace

from bench.incident import summarize
from fleet_sim.model import SCENARIOS, LoadModel
from fleet_sim.simulation import Simulation, max_min_shares
from fleet_sim.strategies import STRATEGIES, limit_row

STEADY = SCENARIOS["steady"]
BACKLOG = SCENARIOS["theirstory-backlog"]


def test_a_fleet_with_spare_cores_has_no_timeouts():
    sim = Simulation(STEADY, servers=2, seed=3)
    totals = sim.run(until_seconds=900)
    assert totals.completed["user"] > 500
    assert totals.timed_out == {"user": 0, "partner": 0}
    assert max(totals.cpu_samples) < 100


def test_oversubscription_produces_timeouts():
    sim = Simulation(BACKLOG, servers=1, seed=3)
    totals = sim.run(until_seconds=900)
    assert totals.timed_out["partner"] > 0
    assert totals.timed_out["user"] > 0, "the partner's load makes direct users' uploads time out too"


def test_a_rejected_client_waits_for_retry_after_before_trying_again():
    rows = [limit_row("*"), limit_row("theirstory-sdk", max_concurrent_uploads=2)]
    sim = Simulation(BACKLOG, servers=1, seed=3, limit_rows=rows)
    attempts: list[tuple[float, bool, int]] = []
    gate = sim.servers[0].gate
    admit = gate.admit

    def recording_admit(client_id, size_bytes, want_headers=False):
        decision = admit(client_id, size_bytes, want_headers)
        if client_id == "theirstory-sdk":
            attempts.append((sim.now, decision.admitted, decision.retry_after_seconds))
            in_flight = sum(1 for u in sim.servers[0].uploads if u.client.kind == "partner")
            assert not decision.admitted or in_flight + 1 <= 2, "the gate holds the concurrency cap"
        return decision

    gate.admit = recording_admit
    sim.run(until_seconds=400)
    rejections = [(at, wait) for at, admitted, wait in attempts if not admitted]
    assert rejections, "two uploads at a time must turn the SDK's 100 away"
    for at, wait in rejections:
        later = [t for t, _, _ in attempts if t > at]
        assert not later or later[0] >= at + wait, "no new attempt before Retry-After has passed"


def test_the_same_seed_gives_the_same_table():
    first = Simulation(BACKLOG, servers=2, seed=11)
    second = Simulation(BACKLOG, servers=2, seed=11)
    first.run(until_seconds=1200)
    second.run(until_seconds=1200)
    assert summarize(first) == summarize(second)
    other = Simulation(BACKLOG, servers=2, seed=12)
    other.run(until_seconds=1200)
    assert summarize(other) != summarize(first)


def test_cores_are_shared_max_min_fairly():
    assert max_min_shares([0.3, 1, 1, 1], 8) == [0.3, 1, 1, 1]
    shares = max_min_shares([0.3, 1.0, 1.0, 1.0], 2)
    assert shares[0] == 0.3 and abs(sum(shares) - 2) < 1e-9 and shares[1] == shares[2] == shares[3]
    assert max_min_shares([], 8) == []


def test_a_new_server_takes_uploads_only_after_warming_up():
    model = replace(LoadModel(), server_warmup_seconds=120)
    sim = Simulation(STEADY, model, servers=1, seed=3)
    new = sim.add_server()
    sim.run(until_seconds=119)
    assert not new.uploads and sim.totals.started["user"] > 0
    sim.run(until_seconds=400)
    assert sim.live_servers()[-1] is new


def test_every_strategy_builds_a_simulation():
    for strategy in STRATEGIES:
        sim = strategy.build(SCENARIOS["big-user"], LoadModel(), 1)
        sim.run(until_seconds=120)
        assert sim.totals.started["user"] > 0, strategy.name
