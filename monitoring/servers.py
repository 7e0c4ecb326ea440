"""The upload-server registry: registering servers and their report tokens (audited like every
other change), and counting the servers that are live."""

from django.db import IntegrityError, transaction
from django.utils import timezone

from core import audit
from monitoring.models import ServerAudit, UploadServer
from monitoring.signals import live_servers_counted


class ServerNameTaken(Exception):
    """Another registration with this name committed first (two at once: full_clean saw neither)."""


class TokenNotReplaced(Exception):
    """A token was not replaced; the message says why, for the person who asked."""


def register_server(actor, name: str, reason: str) -> tuple[UploadServer, str]:
    """A new server and its token; the token is returned once and only its hash is kept."""
    server = UploadServer(name=name, created_by=actor)
    token = server.issue_token()
    server.full_clean()
    try:
        with transaction.atomic():
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
    except IntegrityError as error:
        if UploadServer.objects.filter(name=name).exists():
            raise ServerNameTaken(f"A server named {name} is registered already.") from error
        raise
    return server, token


def rotate_token(server: UploadServer, actor, reason: str, replaces_prefix: str | None = None) -> str:
    """A new token for a server that is not revoked (a new token does not bring a revoked server
    back). With replaces_prefix, only if the token is still the one the form was opened with, so
    a double-submitted form shows one token, and that one works."""
    with transaction.atomic():
        locked = UploadServer.objects.select_for_update().get(pk=server.pk)
        if locked.revoked_at is not None:
            raise TokenNotReplaced(f"{locked.name} is revoked: register the server again under a new name.")
        if replaces_prefix is not None and locked.token_prefix != replaces_prefix:
            raise TokenNotReplaced(
                f"The token of {locked.name} was replaced already (now {locked.token_prefix}…); "
                "a token is shown only once, to whoever replaced it."
            )
        before = {"token_prefix": locked.token_prefix, "revoked": locked.revoked_at is not None}
        token = locked.issue_token()
        # A gone server that ops give a token by hand may report again (a revoked one was refused above).
        locked.gone_at, locked.gone_reason = None, ""
        locked.save(update_fields=["token_hash", "token_prefix", "gone_at", "gone_reason"])
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
