"""The automatic policy on synthetic CPU series: scale out fast, in slowly, never on missing data."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from core.models import AuditEntry
from fleet import policy as policy_module
from fleet.models import PolicyDecision, ScalingAction, ScalingAudit, ScalingGroup, ScalingPolicy
from monitoring.rollups import write_minute_value
from tests.factories import make_local_group

Outcome = PolicyDecision.Outcome
pytestmark = pytest.mark.django_db
START = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def simulation_start() -> datetime:
    # Simulated minutes run ahead of the clock: a scaling's cooldown (real time) is then behind them.
    from django.utils import timezone

    return (timezone.now() + timedelta(days=1)).replace(second=0, microsecond=0)


def make_policy(desired=4, max_capacity=10, cooldown_seconds=0, **fields) -> ScalingPolicy:
    group = make_local_group(
        "sim-fleet", desired=desired, max_capacity=max_capacity, min_capacity=1, cooldown_seconds=cooldown_seconds
    )
    return ScalingPolicy.objects.create(group=group, enabled=True, **fields)


class SimulatedFleet:
    """CPU per minute = the load (in server-percent) spread over the group's current capacity."""

    def __init__(self, policy: ScalingPolicy):
        self.policy = policy
        self.cpu: dict[datetime, float] = {}
        self.start = simulation_start()

    def source(self, group, since, until):
        return {minute: value for minute, value in self.cpu.items() if since <= minute <= until}

    @property
    def capacity(self) -> int:
        return ScalingGroup.objects.get(pk=self.policy.group_id).desired_capacity

    def run(self, minutes: int, load, start: int = 0) -> list[PolicyDecision]:
        decisions = []
        for offset in range(start, start + minutes):
            minute = self.start + timedelta(minutes=offset)
            self.cpu[minute] = min(100.0, max(0.0, load(offset) / self.capacity))
            decisions.append(policy_module.evaluate(self.policy, minute + timedelta(seconds=30), self.source))
        return decisions


def acted(decisions) -> list[PolicyDecision]:
    return [d for d in decisions if d.outcome in (Outcome.SCALE_OUT, Outcome.SCALE_IN)]


def test_a_step_rise_scales_out_in_one_evaluation_with_the_reason_in_words():
    policy = make_policy(desired=4, max_step=2)
    cpu = {START + timedelta(minutes=m): 40.0 for m in range(12)}
    cpu.update({START + timedelta(minutes=m): 91.0 for m in range(12, 15)})
    decision = policy_module.evaluate(
        policy, START + timedelta(minutes=14, seconds=20), lambda group, since, until: cpu
    )
    assert decision.outcome == Outcome.SCALE_OUT
    assert decision.reason == (
        "At 10:14 fleet CPU averaged 91% over 3 min, above the 60% target: "
        "increasing capacity from 4 to 6 (step capped at 2)."
    )
    decision.action.refresh_from_db()
    assert decision.action.status == ScalingAction.Status.SUCCEEDED
    assert ScalingGroup.objects.get(pk=policy.group_id).desired_capacity == 6


def test_in_a_simulated_fleet_a_load_step_is_answered_within_two_minutes():
    fleet = SimulatedFleet(make_policy(desired=4))
    fleet.run(20, lambda minute: 4 * 57.0)
    assert not acted(PolicyDecision.objects.all())
    decisions = fleet.run(2, lambda minute: 4 * 95.0, start=20)
    assert decisions[0].outcome == Outcome.SCALE_OUT, decisions[0].reason
    assert fleet.capacity == 7


def test_noisy_cpu_around_the_target_does_not_flap():
    fleet = SimulatedFleet(make_policy(desired=4))
    noise = random.Random(20261128)
    decisions = fleet.run(60, lambda minute: 4 * 60.0 + 4 * noise.uniform(-8, 8))
    actions = acted(decisions)
    assert len(actions) <= 1, [d.reason for d in actions]
    assert not [d for d in actions if d.outcome == Outcome.SCALE_IN]
    assert ScalingAction.objects.count() == len(actions)


def test_scale_in_waits_for_the_stabilization_window():
    fleet = SimulatedFleet(make_policy(desired=6, stabilization_minutes=10, max_step=3))
    fleet.run(10, lambda minute: 6 * 58.0)
    low = fleet.run(10, lambda minute: 6 * 20.0, start=10)
    assert [d.outcome for d in low[:9]] == [Outcome.HOLD] * 9
    assert "within the 10 min stabilization window" in low[8].reason
    assert low[9].outcome == Outcome.SCALE_IN
    assert low[9].reason.endswith("decreasing capacity from 6 to 3 (step capped at 3).")
    assert fleet.capacity == 3


def test_scale_in_needs_data_for_the_whole_window():
    fleet = SimulatedFleet(make_policy(desired=6, stabilization_minutes=10))
    decisions = fleet.run(5, lambda minute: 6 * 10.0)
    assert all(d.outcome == Outcome.HOLD for d in decisions)
    assert "only 5 of the 10 min stabilization window have data" in decisions[-1].reason


def test_never_scale_in_holds_low_cpu():
    fleet = SimulatedFleet(make_policy(desired=6, stabilization_minutes=2, never_scale_in=True))
    decisions = fleet.run(5, lambda minute: 6 * 10.0)
    assert not acted(decisions) and "never scales in" in decisions[-1].reason


def test_missing_data_does_nothing():
    policy = make_policy(desired=4)
    decision = policy_module.evaluate(policy, START, lambda group, since, until: {})
    assert decision.outcome == Outcome.NO_DATA
    assert decision.reason == "At 10:00 no fleet CPU sample in the last 5 min: no data, no action."
    assert not ScalingAction.objects.exists()


def test_stale_data_does_nothing_even_when_it_was_high():
    policy = make_policy(desired=4, max_data_age_minutes=5)
    cpu = {START + timedelta(minutes=m): 99.0 for m in range(10)}
    decision = policy_module.evaluate(policy, START + timedelta(minutes=16), lambda group, since, until: cpu)
    assert decision.outcome == Outcome.NO_DATA and not ScalingAction.objects.exists()


def test_the_scheduled_run_reads_stored_rollups_acts_once_a_minute_and_audits_as_system(ops_user):
    from django.utils import timezone

    make_policy(desired=2)
    now = timezone.now()
    for minutes_ago in range(3):
        write_minute_value("cpu_percent", "fleet", now - timedelta(minutes=minutes_ago), 95.0)
    assert policy_module.evaluate_all(now) == {Outcome.SCALE_OUT: 1}
    assert policy_module.evaluate_all(now) == {Outcome.SCALE_OUT: 1}, "the same minute's decision"
    assert ScalingAction.objects.count() == 1
    action = ScalingAction.objects.get()
    assert (action.requested_by_name, action.from_capacity, action.to_capacity) == ("policy", 2, 4)
    entry = AuditEntry.objects.get(action=ScalingAudit.SCALING_REQUESTED)
    assert entry.actor_name == "system" and entry.reason.startswith("policy: At ")


def test_a_disabled_policy_is_not_evaluated():
    policy = make_policy(desired=2)
    ScalingPolicy.objects.filter(pk=policy.pk).update(enabled=False)
    assert policy_module.evaluate_all() == {}
    assert not PolicyDecision.objects.exists()


def test_the_policy_holds_during_the_cooldown():
    from django.utils import timezone

    policy = make_policy(desired=4, cooldown_seconds=600)
    ScalingGroup.objects.filter(pk=policy.group_id).update(last_scaled_at=timezone.now())
    policy.group.refresh_from_db()
    decision = policy_module.evaluate(
        policy, timezone.now(), lambda group, since, until: {timezone.now().replace(second=0, microsecond=0): 95.0}
    )
    assert decision.outcome == Outcome.HOLD and "in cooldown until" in decision.reason
    assert not ScalingAction.objects.exists()


def test_an_action_in_progress_holds_the_policy():
    import uuid

    from django.utils import timezone

    policy = make_policy(desired=4)
    ScalingAction.objects.create(
        group=policy.group,
        requested_by_name="policy",
        from_capacity=4,
        to_capacity=5,
        reason="r",
        idempotency_key=uuid.uuid4(),
    )
    now = timezone.now()
    decision = policy_module.evaluate(
        policy, now, lambda group, since, until: {now.replace(second=0, microsecond=0): 95.0}
    )
    assert decision.outcome == Outcome.HOLD and "still in progress" in decision.reason


def test_old_decisions_without_an_action_are_purged():
    from django.utils import timezone

    policy = make_policy(desired=4)
    old = PolicyDecision.objects.create(
        group=policy.group, evaluated_minute=START - timedelta(days=400), outcome=Outcome.NO_DATA, reason="old"
    )
    policy_module.evaluate_all(timezone.now())
    assert not PolicyDecision.objects.filter(pk=old.pk).exists()
    assert PolicyDecision.objects.count() == 1


def test_a_group_at_its_maximum_holds_and_says_so():
    fleet = SimulatedFleet(make_policy(desired=10, max_capacity=10))
    decisions = fleet.run(3, lambda minute: 10 * 95.0)
    assert not acted(decisions)
    assert "but the group is at its maximum of 10: no change at 10." in decisions[-1].reason
