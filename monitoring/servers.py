"""The upload-server registry: registering servers and their report tokens (audited like every
other change), and counting the servers that are live."""

from django.db import transaction
from django.utils import timezone

from core import audit
from monitoring.models import ServerAudit, UploadServer
from monitoring.signals import live_servers_counted


def register_server(actor, name: str, reason: str) -> tuple[UploadServer, str]:
    """A new server and its token; the token is returned once and only its hash is kept."""
    with transaction.atomic():
        server = UploadServer(name=name, created_by=actor)
        token = server.issue_token()
        server.full_clean()
        server.save()
        audit.record(
            actor,
            ServerAudit.SERVER_REGISTERED,
            f"server {name}",
            {},
            {"name": name, "token_prefix": server.token_prefix},
            reason,
            server,
        )
    return server, token


def rotate_token(server: UploadServer, actor, reason: str) -> str:
    with transaction.atomic():
        locked = UploadServer.objects.select_for_update().get(pk=server.pk)
        before = {"token_prefix": locked.token_prefix, "revoked": locked.revoked_at is not None}
        token = locked.issue_token()
        locked.revoked_at = None
        locked.save(update_fields=["token_hash", "token_prefix", "revoked_at"])
        audit.record(
            actor,
            ServerAudit.SERVER_TOKEN_ROTATED,
            f"server {locked.name}",
            before,
            {"token_prefix": locked.token_prefix, "revoked": False},
            reason,
            locked,
        )
    return token


def revoke_server(server: UploadServer, actor, reason: str) -> bool:
    """Refuse the server's reports from now on; it stops counting as live at once."""
    with transaction.atomic():
        revoked = UploadServer.objects.filter(pk=server.pk, revoked_at=None).update(revoked_at=timezone.now())
        if revoked:
            audit.record(
                actor,
                ServerAudit.SERVER_REVOKED,
                f"server {server.name}",
                {"revoked": False},
                {"revoked": True},
                reason,
                server,
            )
    if revoked:
        count_live_servers()
    return bool(revoked)


def count_live_servers(now=None) -> int:
    """Count the live servers and say so to whoever follows the count (monitoring.signals)."""
    count = UploadServer.live_count(now)
    live_servers_counted.send(sender=UploadServer, count=count)
    return count
