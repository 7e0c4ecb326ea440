"""django-q2 entry points: thin wrappers the worker and the scheduler call."""

from fleet import load_coupling, membership, policy, scaling


def run_scaling_action(action_id: int) -> str:
    return scaling.run_action(action_id)


def evaluate_scaling_policies() -> dict:
    # Every minute anyway: also the sweeper of scaling actions, which the broker may have lost
    # (saved while it was down, or taken by a worker that died): settle, then queue what waits.
    scaling.recover_abandoned()
    scaling.enqueue_waiting()
    return policy.evaluate_all()


def run_load_coupled_limits() -> str:
    tick = load_coupling.run()
    return "off" if tick is None else f"{tick.trend}: {len(tick.changed)} partner(s) changed"


def mark_terminated_servers_gone() -> list[str]:
    return membership.mark_terminated_servers_gone()
