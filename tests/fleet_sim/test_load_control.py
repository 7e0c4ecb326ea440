"""The load-coupled limits controller on synthetic CPU series (pure: no database)."""

from fleet_sim.load_control import (
    TREND_OVERLOAD,
    TREND_STEADY,
    TREND_UNDERLOAD,
    TREND_UNKNOWN,
    ControlSettings,
    PartnerLimits,
    control,
    cpu_trend,
)

SETTINGS = ControlSettings(
    cpu_target_percent=70,
    window_seconds=300,
    reserved_share_percent=30,
    decrease_factor=0.5,
    increase_step_percent=10,
    hysteresis_percent=10,
    hold_seconds=300,
)


def series(cpu_percent, until_seconds, every_seconds=60, since_seconds=0):
    return [(float(at), float(cpu_percent)) for at in range(since_seconds, until_seconds + 1, every_seconds)]


def partner(effective_uploads=40, effective_bytes=4_000, changed_at=None, configured=40):
    return PartnerLimits("theirstory", configured, 4_000, effective_uploads, effective_bytes, changed_at)


def test_cpu_above_target_for_the_window_halves_the_limits():
    tick = control(series(90, 600), 600, [partner()], SETTINGS)
    assert tick.trend == TREND_OVERLOAD
    (changed,) = tick.changed
    assert (changed.effective_uploads, changed.effective_bytes) == (20, 2_000)
    assert changed.reduced and "above 70 %" in changed.reason


def test_one_sample_at_target_in_the_window_is_not_an_overload():
    samples = series(90, 600)
    samples[-2] = (samples[-2][0], 65.0)
    assert cpu_trend(samples, 600, SETTINGS) == TREND_STEADY
    assert control(samples, 600, [partner()], SETTINGS).changed == ()


def test_a_window_not_yet_covered_by_samples_changes_nothing():
    samples = series(95, 600, since_seconds=500)
    assert cpu_trend(samples, 600, SETTINGS) == TREND_UNKNOWN
    assert control(samples, 600, [partner()], SETTINGS).changed == ()


def test_cpu_below_the_band_grows_the_limits_back_by_a_step_up_to_configured():
    tick = control(series(30, 1200), 1200, [partner(20, 2_000, changed_at=0)], SETTINGS)
    assert tick.trend == TREND_UNDERLOAD
    assert (tick.partners[0].effective_uploads, tick.partners[0].effective_bytes) == (24, 2_400)
    almost = control(series(30, 1200), 1200, [partner(38, 3_900, changed_at=0)], SETTINGS).partners[0]
    assert (almost.effective_uploads, almost.effective_bytes) == (40, 4_000)
    assert not almost.reduced and almost.reason == ""


def test_inside_the_hysteresis_band_nothing_grows():
    assert control(series(65, 1200), 1200, [partner(20, 2_000, changed_at=0)], SETTINGS).changed == ()


def test_a_partner_changed_within_the_hold_time_is_left_alone():
    assert control(series(95, 600), 600, [partner(20, 2_000, changed_at=400)], SETTINGS).changed == ()


def test_bulk_partners_together_keep_within_the_unreserved_share():
    # The fleet carries 100 uploads; 30 % is reserved, so two partners configured at 80 and
    # 60 share 70 in proportion, at once, whatever the CPU says.
    big = PartnerLimits("theirstory", 80, None, 80, None)
    other = PartnerLimits("archive", 60, None, 60, None)
    tick = control(series(40, 600), 600, [big, other], SETTINGS, fleet_upload_capacity=100)
    limits = {p.client_id: p.effective_uploads for p in tick.partners}
    assert limits == {"theirstory": 40, "archive": 30}
    assert sum(limits.values()) <= 70
    assert all("70 % of fleet capacity" in p.reason for p in tick.partners)


def test_a_backlog_that_keeps_the_fleet_busy_never_gets_the_reserved_share():
    # Growing back stops at the bulk share even while the CPU stays low for hours.
    state = [PartnerLimits("theirstory", 200, None, 10, None, 0)]
    for now in range(600, 6 * 3600, 60):
        state = list(
            control(series(20, now, since_seconds=now - 600), now, state, SETTINGS, fleet_upload_capacity=100).partners
        )
        assert state[0].effective_uploads <= 70
    assert state[0].effective_uploads == 70


def test_a_steady_overload_changes_the_limits_a_bounded_number_of_times_an_hour():
    # A plant that answers the limits: CPU = 40 % + 1.5 % per upload the partner may run,
    # sampled every 10 s, the controller run every 30 s for 3 hours.
    settings = ControlSettings(
        cpu_target_percent=70,
        window_seconds=120,
        decrease_factor=0.7,
        increase_step_percent=10,
        hysteresis_percent=10,
        hold_seconds=300,
    )
    state = [PartnerLimits("theirstory", 60, None, 60, None)]
    samples, changes, now = [], [], 0
    while now < 3 * 3600:
        now += 10
        samples.append((float(now), 40 + 1.5 * state[0].effective_uploads))
        samples = samples[-30:]
        if now % 30 == 0:
            tick = control(samples, now, state, settings)
            changes += [now for _ in tick.changed]
            state = list(tick.partners)
    last_hour = [at for at in changes if at > 2 * 3600]
    assert len(last_hour) <= 3600 / settings.hold_seconds
    assert len(changes) >= 2  # it did act: the overload was real
    assert state[0].effective_uploads < 60
