"""Who is using the fleet right now: the overview's top consumers, partners and direct users,
from each live server's latest report, beside the limits they are held to, each with the one
place to lower it or pause it."""

from django.db.models import QuerySet
from django.urls import reverse

from core import roles
from monitoring import queries
from monitoring.models import UploadServer
from partners.models import DEFAULTS_CLIENT_ID, FleetSettings, Partner

TOP_CONSUMERS = 8
DIRECT_USERS = "Direct users & clients without a row"


def top_consumers(
    user, live: QuerySet[UploadServer], partners: list[Partner], limit: int = TOP_CONSUMERS
) -> list[dict]:
    """The busiest first (bytes in flight, then uploads). Direct users (the gate's "*": every
    client id without a row of its own) are one entry, shown to those who see every partner.

    partners: those the user may see, with their pauses prefetched (visible_partners().with_pause())."""
    per_client = queries.latest_client_figures(live)
    rows = []
    for partner in partners:
        uploads, bytes_in_flight = per_client.pop(partner.client_id, (0, 0))
        rows.append(
            {
                "name": partner.name,
                "kind": "partner",
                "uploads_in_progress": uploads,
                "bytes_in_flight": bytes_in_flight,
                "max_concurrent_uploads": partner.effective_value("max_concurrent_uploads"),
                "max_bytes_in_flight": partner.effective_value("max_bytes_in_flight"),
                "paused": partner.paused,
                "url": partner.get_absolute_url(),
                "lower_url": partner.get_absolute_url() + "#overrides",
                "pause_url": partner.get_absolute_url() + "#imports",
            }
        )
    if roles.sees_everything(user):
        rows.append(_direct_users(per_client))
    busy = [row for row in rows if row["uploads_in_progress"] or row["bytes_in_flight"]]
    busy.sort(key=lambda row: (-row["bytes_in_flight"], -row["uploads_in_progress"], row["name"]))
    return busy[:limit]


def _direct_users(per_client: dict[str, tuple[int, int]]) -> dict:
    """What is left once the partners are taken out: "*" and client ids the table has no row for.
    Their limits are the defaults, which each such client gets on its own."""
    defaults = FleetSettings.load()
    controls = reverse("partners:controls")
    return {
        "name": DIRECT_USERS,
        "kind": "direct",
        "uploads_in_progress": sum(uploads for uploads, _ in per_client.values()),
        "bytes_in_flight": sum(bytes_in_flight for _, bytes_in_flight in per_client.values()),
        "max_concurrent_uploads": defaults.max_concurrent_uploads,
        "max_bytes_in_flight": defaults.max_bytes_in_flight,
        "limits_per_client": True,
        "paused": False,
        "url": controls + "#defaults",
        "lower_url": controls + "#defaults",
        # Pausing all partner imports leaves direct users running: there is no pause for them.
        "pause_url": None,
        "client_id": DEFAULTS_CLIENT_ID,
    }
