"""Break-glass: pause every partner's imports from a shell, when the dashboard cannot be reached.

    manage.py pause_all --reason "fleet overloaded, dashboard down" [--minutes 60]

The same pause as the dashboard's "pause all" (partners.changes.pause): audited as the system
actor and published to the upload servers in one transaction; --minutes resumes by itself.
"""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from core.commands import audit_reason
from partners import changes


class Command(BaseCommand):
    help = "Pause every partner's imports (audited, published at once); --minutes to resume by itself."

    def add_arguments(self, parser):
        parser.add_argument("--reason", required=True, help="why: written to the audit log and shown to servers")
        parser.add_argument("--minutes", type=int, help="resume by itself after this many minutes")

    def handle(self, *args, reason: str, minutes: int | None, **options):
        why = audit_reason("pause_all", reason)
        if minutes is not None and minutes < 1:
            raise CommandError("--minutes must be at least 1.")
        resume_at = timezone.now() + timedelta(minutes=minutes) if minutes else None
        result = changes.pause(None, None, why, resume_at)
        until = f" until {resume_at:%Y-%m-%d %H:%M} UTC" if resume_at else " until resume_all"
        self.stdout.write(f"All partner imports paused{until}; published as config version {result.version}.")
