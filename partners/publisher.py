"""The only writer of the shared config table `upload_limits` (docs/shared-config-table.md).

Every function here must run inside the transaction that makes the change and writes its
audit entry, so the three commit together or not at all.
"""

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from partners.models import (
    DEFAULTS_CLIENT_ID,
    ConfigVersion,
    FleetSettings,
    Partner,
    Priority,
    UploadLimitRow,
)

NOTIFY_CHANNEL = "upload_limits"


class PublishError(RuntimeError):
    pass


def _require_transaction() -> None:
    if not connection.in_atomic_block:
        raise PublishError("Publish inside the transaction that makes the change.")


def next_version() -> int:
    """Take the next global version; the row lock it takes is held until commit."""
    _require_transaction()
    if not ConfigVersion.objects.filter(pk=1).update(value=F("value") + 1):
        try:
            with transaction.atomic():
                ConfigVersion.objects.create(pk=1, value=1)
        except IntegrityError:
            # Another publisher created the counter first: queue on its row lock instead.
            ConfigVersion.objects.filter(pk=1).update(value=F("value") + 1)
    version = ConfigVersion.objects.get(pk=1).value
    _notify_after_commit(version)
    return version


def _notify_after_commit(version: int) -> None:
    if connection.vendor == "postgresql":
        # NOTIFY inside a transaction is delivered by PostgreSQL only when it commits.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, str(version)])


def live_server_count(now=None) -> int:
    """Upload servers that reported within 3 of their intervals.

    While none is live (before the first report, or while reports cannot reach us) it is
    the fleet's configured size: dividing by 1 would let every server admit the whole
    fleet-wide limit.
    """
    from monitoring.models import UploadServer

    return UploadServer.live(now).count() or max(1, settings.FLEET_CONFIGURED_SERVER_COUNT)


def publish_partner(partner: Partner, previous_client_id: str | None = None) -> int:
    """Write the partner's row; drop its old row if its client id changed."""
    version = next_version()
    if previous_client_id and previous_client_id != partner.client_id:
        UploadLimitRow.objects.filter(client_id=previous_client_id).delete()
    fleet = FleetSettings.load()
    UploadLimitRow.objects.update_or_create(
        client_id=partner.client_id,
        defaults={
            # The limits in force: lowered ones while load-coupled limits hold them down.
            **partner.effective_limit_values(),
            "reduced_limits": ",".join(partner.reduced_limits()) or None,
            **partner.shadow_values(),
            "paused": partner.paused,
            "pause_reason": partner.pause_reason if partner.paused else "",
            "resume_at": partner.resume_at if partner.paused else None,
            "priority": partner.priority,
            "version": version,
            "updated_at": timezone.now(),
            **_fleet_columns(fleet, for_defaults_row=False),
        },
    )
    return version


def publish_defaults(fleet: FleetSettings | None = None) -> int:
    """Write the `*` row: default limits, the global pause and the live server count."""
    fleet = fleet or FleetSettings.load()
    version = next_version()
    UploadLimitRow.objects.update_or_create(
        client_id=DEFAULTS_CLIENT_ID,
        defaults={
            **fleet.limit_values(),
            "paused": False,
            "pause_reason": "",
            "resume_at": None,
            "priority": Priority.INTERACTIVE,
            "version": version,
            "updated_at": timezone.now(),
            **_fleet_columns(fleet, for_defaults_row=True),
        },
    )
    return version


def _fleet_columns(fleet: FleetSettings, for_defaults_row: bool) -> dict:
    if not for_defaults_row:
        return {
            "all_partners_paused": False,
            "all_partners_pause_reason": "",
            "all_partners_resume_at": None,
            "live_server_count": live_server_count(),
        }
    paused = fleet.all_partners_paused
    return {
        "all_partners_paused": paused,
        "all_partners_pause_reason": fleet.all_partners_pause_reason if paused else "",
        "all_partners_resume_at": fleet.all_partners_resume_at if paused else None,
        "live_server_count": live_server_count(),
    }


def republish_all() -> int:
    """Rewrite every row from the models (after a restore, or to repair drift)."""
    version = publish_defaults()
    known_client_ids = []
    for partner in Partner.objects.all():
        version = publish_partner(partner)
        known_client_ids.append(partner.client_id)
    stray = UploadLimitRow.objects.exclude(client_id__in=[DEFAULTS_CLIENT_ID, *known_client_ids])
    if stray.exists():
        stray.delete()
        version = publish_defaults()
    return version
