"""django-q2 entry points: thin wrappers the worker and the scheduler call."""

from fleet import load_coupling, membership, policy, scaling


def run_scaling_action(action_id: int) -> str:
    return scaling.run_action(action_id)


def evaluate_scaling_policies() -> dict:
    # Every minute anyway: also the sweeper for actions saved while the broker was down.
    scaling.enqueue_waiting()
    scaling.fail_abandoned()
    return policy.evaluate_all()


def run_load_coupled_limits() -> str:
    tick = load_coupling.run()
    return "off" if tick is None else f"{tick.trend}: {len(tick.changed)} partner(s) changed"


def mark_terminated_servers_gone() -> list[str]:
    return membership.mark_terminated_servers_gone()
