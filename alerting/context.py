"""Context processor: the open-alert count every page shows (nav, title, favicon) to the
people who get the alerts. One indexed count per page view."""

from alerting.models import OPEN_STATES, Alert, AlertState
from core import roles


def open_alerts(request) -> dict:
    if not roles.sees_everything(request.user):
        return {}
    states = dict.fromkeys(OPEN_STATES, 0)
    for state in Alert.objects.filter(state__in=OPEN_STATES, rule__enabled=True).values_list("state", flat=True):
        states[state] += 1
    return {"open_alert_count": sum(states.values()), "firing_alert_count": states[AlertState.FIRING]}
