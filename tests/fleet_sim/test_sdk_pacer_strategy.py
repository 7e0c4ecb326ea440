"""The simulated SDK runs the pacer's own decision core (upload_gate/pacing.py) on the
simulation clock, so bench/incident.py's pacer rows measure the pacer itself."""

from dataclasses import replace

from fleet_sim.model import SCENARIOS, LoadModel
from fleet_sim.simulation import Simulation
from fleet_sim.strategies import PARTNER_LIMITS, STRATEGIES, USER_DEFAULT_LIMITS, limit_row
from upload_gate.pacing import PacerCore, PacerSettings

# 30 videos, 100 at a time, on one box whose gate lets the partner have 24 uploads in flight.
SCENARIO = replace(
    SCENARIOS["theirstory-backlog"],
    duration_seconds=1800,
    backlog=replace(SCENARIOS["theirstory-backlog"].backlog, files=30),
)
ROWS = [limit_row("*", **USER_DEFAULT_LIMITS), limit_row("theirstory-sdk", **PARTNER_LIMITS)]


def run(**partner) -> Simulation:
    sim = Simulation(SCENARIO, LoadModel(), servers=1, seed=1, limit_rows=ROWS, **partner)
    sim.run()
    return sim


def test_the_pacer_keeps_to_what_ratelimit_says_is_left_where_the_bare_sdk_learns_it_from_429s():
    bare = run(partner_concurrency=100)
    paced = run(partner_pacer=PacerSettings(max_concurrency=100, max_attempts=10))
    for sim in (bare, paced):
        assert sim.totals.backlog_done_at is not None and sim.totals.files_abandoned["partner"] == 0
        assert sim.totals.timed_out["partner"] == 0
    assert paced.totals.throttled["partner"] * 5 < bare.totals.throttled["partner"], (
        paced.totals.throttled,
        bare.totals.throttled,
    )
    # Each 429 cost the bare SDK a whole Retry-After; the pacer's backlog is not slower.
    assert paced.totals.backlog_done_at <= bare.totals.backlog_done_at * 1.02


def test_the_sdk_pacing_strategies_hand_the_backlog_to_the_pacer():
    for name in ("SDK pacing", "pacer + gate limits + scaling"):
        strategy = next(s for s in STRATEGIES if s.name == name)
        sim = strategy.build(SCENARIO, LoadModel(), seed=1)
        partner = next(c for c in sim.clients if c.kind == "partner")
        assert isinstance(partner.pacer, PacerCore) and partner.pacer.total == 30
