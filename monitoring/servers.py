"""Registering upload servers and their report tokens, audited like every other change."""

from django.db import transaction
from django.utils import timezone

from monitoring.models import UploadServer
from partners.changes import record
from partners.models import AuditAction


def register_server(actor, name: str, reason: str) -> tuple[UploadServer, str]:
    """A new server and its token; the token is returned once and only its hash is kept."""
    with transaction.atomic():
        server = UploadServer(name=name, created_by=actor)
        token = server.issue_token()
        server.full_clean()
        server.save()
        record(actor, AuditAction.SERVER_REGISTERED, f"server {name}", {},
               {"name": name, "token_prefix": server.token_prefix}, reason)
    return server, token


def rotate_token(server: UploadServer, actor, reason: str) -> str:
    with transaction.atomic():
        locked = UploadServer.objects.select_for_update().get(pk=server.pk)
        before = {"token_prefix": locked.token_prefix, "revoked": locked.revoked_at is not None}
        token = locked.issue_token()
        locked.revoked_at = None
        locked.save(update_fields=["token_hash", "token_prefix", "revoked_at"])
        record(actor, AuditAction.SERVER_TOKEN_ROTATED, f"server {locked.name}", before,
               {"token_prefix": locked.token_prefix, "revoked": False}, reason)
    return token


def revoke_server(server: UploadServer, actor, reason: str) -> bool:
    """Refuse the server's reports from now on; it stops counting as live at once."""
    from monitoring.reports import sync_live_server_count

    with transaction.atomic():
        revoked = UploadServer.objects.filter(pk=server.pk, revoked_at=None).update(revoked_at=timezone.now())
        if revoked:
            record(actor, AuditAction.SERVER_REVOKED, f"server {server.name}", {"revoked": False},
                   {"revoked": True}, reason)
    if revoked:
        sync_live_server_count()
    return bool(revoked)
