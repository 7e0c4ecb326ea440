"""Break glass: a temporary ops login, made on the host, for when no ops login works.

    manage.py temporary_ops_login --reason "incident 42: ops locked out" [--hours 4]

Prints a new user name and a random password once. The login is in the ops group and is
refused after --hours (sessions too: core.login_throttle.ExpiringModelBackend). Audited.
"""

import getpass
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from core import audit
from core.login_throttle import TEMPORARY_LOGIN_PREFIX
from core.models import AccessAudit, TemporaryLogin
from core.roles import OPS_GROUP

MAX_HOURS = 24


class Command(BaseCommand):
    help = "Create a temporary ops login (printed once) that stops working after --hours."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--hours", type=int, default=4, help=f"how long it works, 1 to {MAX_HOURS} (default 4)")
        parser.add_argument("--reason", required=True, help="why; kept in the audit log")

    def handle(self, *args, hours: int, reason: str, **options) -> None:
        if not 1 <= hours <= MAX_HOURS:
            raise CommandError(f"--hours must be between 1 and {MAX_HOURS}.")
        if not reason.strip():
            raise CommandError("--reason must say why.")
        now = timezone.now()
        username = f"{TEMPORARY_LOGIN_PREFIX}{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
        password = secrets.token_urlsafe(18)
        expires_at = now + timedelta(hours=hours)
        with transaction.atomic():
            user = get_user_model().objects.create_user(username, password=password)
            user.groups.add(Group.objects.get_or_create(name=OPS_GROUP)[0])
            TemporaryLogin.objects.create(user=user, expires_at=expires_at)
            audit.record(
                None,
                AccessAudit.TEMPORARY_OPS_LOGIN_CREATED,
                f"user {username}",
                {},
                {"username": username, "group": OPS_GROUP, "expires_at": audit.json_value(expires_at)},
                f"manage.py temporary_ops_login by {getpass.getuser()} on the host: {reason.strip()}",
            )
        self.stdout.write(f"User name: {username}\nPassword:  {password}")
        self.stdout.write(f"Works until {expires_at:%Y-%m-%d %H:%M} UTC, in the ops group. Shown once.")
