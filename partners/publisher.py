"""The only writer of the shared config table `upload_limits` (docs/shared-config-table.md).

Every function here must run inside the transaction that makes the change and writes its
audit entry, so the three commit together or not at all.

The live server count comes from status reports (the monitoring app counts live servers); it
is handed in through publish_live_server_count(), which rewrites the `*` row when it moved.
Other rows carry the count as the `*` row had it when they were written.
"""

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from partners.models import (
    DEFAULTS_CLIENT_ID,
    ConfigVersion,
    FleetSettings,
    Override,
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


def published_live_server_count() -> int:
    """The count the `*` row carries; before it exists, the fleet's configured size."""
    count = (
        UploadLimitRow.objects.filter(client_id=DEFAULTS_CLIENT_ID).values_list("live_server_count", flat=True).first()
    )
    return count or max(1, settings.FLEET_CONFIGURED_SERVER_COUNT)


def one_line(text: str) -> str:
    """The text with every line break made a space. A reader shows the pause reason to the
    client in its 503 (docs/shared-config-table.md), in a body or a header of its choosing,
    where a CR or LF would split a log line or end a header. Pauses stored before their form
    refused line breaks publish safely too."""
    return " ".join(text.splitlines())


def _pause_columns(pause: Override | None) -> dict:
    return {
        "reason": one_line(pause.reason) if pause else "",
        "resume_at": pause.ends_at if pause else None,
        "paused": pause is not None,
    }


def publish_partner(partner: Partner, previous_client_id: str | None = None) -> int:
    """Write the partner's row; drop its old row if its client id changed."""
    version = next_version()
    if previous_client_id and previous_client_id != partner.client_id:
        UploadLimitRow.objects.filter(client_id=previous_client_id).delete()
    pause = _pause_columns(Override.objects.active_pause_of(partner))
    UploadLimitRow.objects.update_or_create(
        client_id=partner.client_id,
        defaults={
            # The limits in force: lowered ones while load-coupled limits hold them down.
            **partner.effective_limit_values(),
            "reduced_limits": ",".join(partner.reduced_limits()) or None,
            **partner.shadow_values(),
            "paused": pause["paused"],
            "pause_reason": pause["reason"],
            "resume_at": pause["resume_at"],
            "priority": partner.priority,
            "version": version,
            "updated_at": timezone.now(),
            "all_partners_paused": False,
            "all_partners_pause_reason": "",
            "all_partners_resume_at": None,
            "live_server_count": published_live_server_count(),
        },
    )
    return version


def publish_defaults(fleet: FleetSettings | None = None, live_server_count: int | None = None) -> int:
    """Write the `*` row: default limits, the pause of all partners and the live server count
    (kept as it is unless handed in)."""
    fleet = fleet or FleetSettings.load()
    count = live_server_count if live_server_count is not None else published_live_server_count()
    version = next_version()
    pause_all = _pause_columns(Override.objects.active_pause_of(None))
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
            "all_partners_paused": pause_all["paused"],
            "all_partners_pause_reason": pause_all["reason"],
            "all_partners_resume_at": pause_all["resume_at"],
            "live_server_count": max(1, count),
        },
    )
    return version


def publish_live_server_count(count: int) -> bool:
    """Rewrite the `*` row when the live server count moved, so each gate's share follows the
    fleet; False when the table already carries it. Runs its own transaction."""
    count = max(1, count)
    with transaction.atomic():
        published = (
            UploadLimitRow.objects.select_for_update()
            .filter(client_id=DEFAULTS_CLIENT_ID)
            .values_list("live_server_count", flat=True)
            .first()
        )
        if published == count:
            return False
        publish_defaults(live_server_count=count)
    return True


def ensure_defaults_row() -> None:
    """The `*` row exists once the app has migrated (docs/shared-config-table.md)."""
    with transaction.atomic():
        if not UploadLimitRow.objects.filter(client_id=DEFAULTS_CLIENT_ID).exists():
            publish_defaults()


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
