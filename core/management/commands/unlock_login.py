"""Break glass: lift login lockouts from the host, when the web login refuses ops.

    manage.py unlock_login ops                 # the user name, from every address
    manage.py unlock_login --address 203.0.113.7
    manage.py unlock_login --all               # every lockout

Audited (actor "system", the host account named in the reason).
"""

import getpass

from axes.models import AccessAttempt
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from core import audit
from core.models import AccessAudit


class Command(BaseCommand):
    help = "Lift login lockouts for a user name, an address, or all (works when the web login does not)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username", nargs="?", help="the user name to unlock, from every address")
        parser.add_argument("--address", help="unlock this client address (for every user name)")
        parser.add_argument("--all", action="store_true", help="lift every lockout")
        parser.add_argument("--reason", default="", help="kept in the audit log")

    def handle(self, *args, username=None, address=None, all=False, reason="", **options) -> None:
        if not (username or address or all):
            raise CommandError("Name a user, --address ADDRESS, or --all.")
        attempts = AccessAttempt.objects.all()
        if not all:
            if username:
                attempts = attempts.filter(username=username)
            if address:
                attempts = attempts.filter(ip_address=address)
        what = "every login" if all else " at ".join(part for part in (username, address) if part)
        with transaction.atomic():
            failures = sum(attempts.values_list("failures_since_start", flat=True))
            removed, _ = attempts.delete()
            audit.record(
                None,
                AccessAudit.LOGIN_UNLOCKED,
                f"login {what}",
                {"failed_attempts": failures},
                {"failed_attempts": 0},
                f"manage.py unlock_login by {getpass.getuser()} on the host" + (f": {reason}" if reason else ""),
            )
        self.stdout.write(f"Unlocked {what}: {removed} record(s) of {failures} failed login(s) removed.")
