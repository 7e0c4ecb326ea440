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
        # A gone server that ops give a token by hand may report again.
        locked.gone_at, locked.gone_reason = None, ""
        locked.save(update_fields=["token_hash", "token_prefix", "revoked_at", "gone_at", "gone_reason"])
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


def mark_gone(server: UploadServer, why: str, action: str = ServerAudit.SERVER_GONE, now=None) -> bool:
    """The server deregistered or was terminated: refuse its token, stop counting it, and let no
    "server silent" alert watch it. False when it was gone or revoked already."""
    now = now or timezone.now()
    why = why[: UploadServer._meta.get_field("gone_reason").max_length]
    with transaction.atomic():
        marked = UploadServer.objects.filter(pk=server.pk, gone_at=None, revoked_at=None).update(
            gone_at=now, gone_reason=why
        )
        if marked:
            audit.record(None, action, f"server {server.name}", {"gone": False}, {"gone": True}, why, server)
    if marked:
        server.gone_at, server.gone_reason = now, why
        count_live_servers()
    return bool(marked)


def count_live_servers(now=None) -> int:
    """Count the live servers and say so to whoever follows the count (monitoring.signals)."""
    count = UploadServer.live_count(now)
    live_servers_counted.send(sender=UploadServer, count=count)
    return count
