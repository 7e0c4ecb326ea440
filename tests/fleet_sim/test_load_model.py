"""The simulated fleet's load model: what it must do whatever its parameters."""

from dataclasses import replace

from bench.incident import summarize
from fleet_sim.model import SCENARIOS, LoadModel
from fleet_sim.simulation import Server, Simulation, Upload, max_min_shares
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


def _upload(cpu_seconds: float, cores_wanted: float) -> Upload:
    return Upload(
        client=None, slot=None, part=None, cpu_left=cpu_seconds, cores_wanted=cores_wanted, started_at=0.0, lease=None
    )


def test_cores_an_upload_frees_part_way_through_a_step_go_to_the_others():
    # One core, two uploads wanting a core each: half a core each until the short one is
    # done after 0.5 s, then the whole core to the long one; the core never idles.
    server = Server("s", gate=None, ready_at=0.0, cores=1)
    short, long_ = _upload(0.25, 1.0), _upload(2.0, 1.0)
    server.uploads = [short, long_]
    busy_cores = Simulation._share_cores(server, 1.0)
    assert short.cpu_left <= 1e-9
    assert abs(long_.cpu_left - 1.25) < 1e-9
    assert abs(busy_cores - 1.0) < 1e-9


def test_a_server_with_room_runs_each_upload_at_what_it_wants():
    server = Server("s", gate=None, ready_at=0.0, cores=8)
    photo, video = _upload(0.1, 0.3), _upload(5.0, 1.0)
    server.uploads = [photo, video]
    busy_cores = Simulation._share_cores(server, 1.0)
    assert photo.cpu_left == 0 and abs(video.cpu_left - 4.0) < 1e-9
    assert abs(busy_cores - 1.1) < 1e-9, "the photo's 0.1 core-second plus the video's core"


def test_a_saturated_server_turns_its_whole_capacity_into_finished_parts():
    sim = Simulation(
        BACKLOG, servers=1, seed=3, limit_rows=[limit_row("*"), limit_row("theirstory-sdk", max_concurrent_uploads=24)]
    )
    sim.run(until_seconds=1800)
    row = summarize(sim)
    assert row["timeouts_partner"] == 0 and row["cpu_p95"] > 99.9
    assert row["throughput_share"] > 0.97


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
