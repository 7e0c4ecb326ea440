"""What the day-2 management commands share: the reason they write in the audit log.

A command runs as the system actor (core.audit.SYSTEM_ACTOR_NAME): no dashboard user is
logged in. Its audit reason says which command ran, and the operating-system user and host
that ran it, so the log still says who did it.
"""

import getpass
import socket

from django.core.management.base import CommandError


def audit_reason(command: str, reason: str) -> str:
    """The reason as the audit log keeps it; CommandError when none was given."""
    reason = " ".join((reason or "").split())
    if not reason:
        raise CommandError("Say why with --reason: it goes into the audit log.")
    return f"{reason} (manage.py {command}, run by {_operator()})"


def _operator() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's bare uid)
        user = "unknown user"
    return f"{user}@{socket.gethostname()}"
