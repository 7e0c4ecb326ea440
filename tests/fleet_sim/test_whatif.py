"""The what-if projection: the simulated fleet run on a partner's upload, its limits and the fleet size."""

from dataclasses import replace

import pytest

from bench.incident import summarize
from fleet_sim.model import SCENARIOS, LoadModel
from fleet_sim.strategies import PARTNER_LIMITS, USER_DEFAULT_LIMITS, GateLimits, SdkPacing
from fleet_sim.whatif import SIZE_MIXES, WhatIf, explicit_mix, project

MB = 1_000_000
BACKLOG = SCENARIOS["theirstory-backlog"]


def videos(files=60, servers=1, **limits) -> WhatIf:
    return WhatIf(
        "theirstory-sdk", files, SIZE_MIXES["large-videos"], servers, default_limits=USER_DEFAULT_LIMITS, **limits
    )


def test_more_servers_finish_sooner_at_lower_cpu():
    one = project(videos(servers=1, max_concurrent_uploads=24))
    three = project(videos(servers=3, max_concurrent_uploads=24))
    assert three.completion_seconds < one.completion_seconds
    assert three.mean_cpu_percent < one.mean_cpu_percent
    assert three.peak_cpu_percent <= one.peak_cpu_percent


def test_tighter_concurrency_gives_fewer_timeouts():
    loose = project(videos(files=200, servers=1, max_concurrent_uploads=100), horizon_seconds=1200)
    tight = project(videos(files=200, servers=1, max_concurrent_uploads=8), horizon_seconds=1200)
    assert loose.partner_timeouts > 0 and loose.others_timeouts > 0
    assert tight.partner_timeouts < loose.partner_timeouts
    assert tight.others_timeouts < loose.others_timeouts
    assert tight.timeout_risk == "low" and loose.timeout_risk == "high"
    # Without the cap the SDK gives files up, so its "finish" is not one; with it every file lands.
    assert loose.partner_files_given_up > 0 and tight.partner_files_given_up == 0


def test_tighter_concurrency_takes_longer_when_nothing_times_out():
    roomy = project(videos(files=30, servers=4, max_concurrent_uploads=24))
    tight = project(videos(files=30, servers=4, max_concurrent_uploads=4))
    assert roomy.partner_timeouts == tight.partner_timeouts == 0
    assert tight.completion_seconds > roomy.completion_seconds


def test_bigger_files_take_longer_and_the_bytes_are_counted():
    small = project(WhatIf("p", 500, SIZE_MIXES["small-documents"], 1))
    large = project(WhatIf("p", 500, explicit_mix(50 * MB, 100 * MB), 1))
    assert 500 * 100_000 <= small.total_bytes <= 500 * 3 * MB
    assert 500 * 50 * MB <= large.total_bytes <= 500 * 100 * MB
    assert large.completion_seconds > small.completion_seconds


def test_a_long_upload_is_extrapolated_beyond_the_horizon():
    short = project(videos(files=100, max_concurrent_uploads=24), horizon_seconds=900)
    assert short.extrapolated and short.simulated_seconds == 900
    assert short.completion_seconds > 900
    assert len(short.cpu_by_minute) == (60 + 900) // 60


def _bench_row(strategy, files):
    scenario = replace(BACKLOG, backlog=replace(BACKLOG.backlog, files=files))
    sim = strategy.build(scenario, LoadModel(), seed=1)
    sim.run()
    row = summarize(sim)
    # CPU while the partner's upload ran, as the what-if reports it.
    done_at = sim.totals.backlog_done_at
    row["cpu_mean"] = sum(sim.totals.cpu_samples[: int(done_at)]) / done_at
    return row


@pytest.mark.parametrize(
    ("strategy", "what_if"),
    [
        (GateLimits("limits in the gate", ""), videos(files=300, **PARTNER_LIMITS)),
        (SdkPacing("SDK pacing", ""), replace(videos(files=300), sdk_concurrency=8, default_limits={})),
    ],
    ids=["limits in the gate", "SDK pacing"],
)
def test_agrees_with_bench_incident_within_ten_percent(strategy, what_if):
    bench = _bench_row(strategy, what_if.files)
    projection = project(what_if)
    assert bench["completion_s"] is not None
    assert projection.extrapolated, "the comparison covers the extrapolated part too"
    assert projection.completion_seconds == pytest.approx(bench["completion_s"], rel=0.10)
    assert projection.mean_cpu_percent == pytest.approx(bench["cpu_mean"], rel=0.10)
    assert projection.cpu_p95_percent == pytest.approx(bench["cpu_p95"], rel=0.10)
    assert projection.partner_timeouts == bench["timeouts_partner"] == 0
