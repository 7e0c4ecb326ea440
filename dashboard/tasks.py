"""django-q2 entry points: thin wrappers the worker and the scheduler call."""


def run_scaling_action(action_id: int) -> str:
    from dashboard import scaling

    return scaling.run_action(action_id)


def evaluate_scaling_policies() -> dict:
    from dashboard import policy, scaling

    # Every minute anyway: also the sweeper for actions saved while the broker was down.
    scaling.enqueue_waiting()
    scaling.fail_abandoned()
    return policy.evaluate_all()


def send_weekly_summary() -> bool:
    from dashboard import weekly

    return weekly.send_weekly_summary()
