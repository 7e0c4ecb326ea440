"""Context processor: the open-alert count every page shows (nav, title, favicon) to the
people who get the alerts. One indexed count per page view."""

from alerting.models import OPEN_STATES, Alert, AlertState, Severity
from core import roles


def open_alert_summary() -> dict:
    """How many alerts are open and firing, and the worst severity among the open ones
    (None when none is open): what the nav, the title and the overview's alert tile show."""
    states = dict.fromkeys(OPEN_STATES, 0)
    severities = set()
    for state, severity in Alert.objects.filter(state__in=OPEN_STATES, rule__enabled=True).values_list(
        "state", "rule__severity"
    ):
        states[state] += 1
        severities.add(severity)
    worst = next((s.value for s in (Severity.CRITICAL, Severity.WARNING) if s in severities), None)
    return {
        "open_alert_count": sum(states.values()),
        "firing_alert_count": states[AlertState.FIRING],
        "worst_alert_severity": worst,
    }


def open_alerts(request) -> dict:
    if not roles.sees_everything(request.user):
        return {}
    return open_alert_summary()
