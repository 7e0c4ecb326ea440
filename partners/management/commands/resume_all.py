"""End the pause of every partner's imports from a shell (see pause_all).

manage.py resume_all --reason "fleet recovered"
"""

from django.core.management.base import BaseCommand, CommandError

from core.commands import audit_reason
from partners import changes


class Command(BaseCommand):
    help = "Resume every partner's imports after pause_all (audited, published at once)."

    def add_arguments(self, parser):
        parser.add_argument("--reason", required=True, help="why: written to the audit log")

    def handle(self, *args, reason: str, **options):
        result = changes.resume(None, None, audit_reason("resume_all", reason))
        if not result.changed:
            raise CommandError("Imports of all partners are not paused; nothing changed.")
        self.stdout.write(f"All partner imports resumed; published as config version {result.version}.")
