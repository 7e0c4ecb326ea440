"""The stale-worker banner every page shows (templates/partials/worker_banner.html)."""

from django import template
from django.db import DatabaseError

from core.heartbeat import HeartbeatStatus, heartbeat_status

register = template.Library()


@register.simple_tag(takes_context=True)
def stale_worker_heartbeat(context) -> HeartbeatStatus | None:
    """The heartbeat's status when a signed-in user should see the banner, else None."""
    request = context.get("request")
    if request is None or not request.user.is_authenticated:
        return None
    try:
        status = heartbeat_status()
    except DatabaseError:  # the page itself says what is wrong with the database
        return None
    return None if status.fresh else status
