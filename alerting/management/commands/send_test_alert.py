"""Send a test alert email now, from this process (not the worker): does alert email reach people?

    manage.py send_test_alert --reason "new SMTP relay" [--to someone@example.org ...]

To every engineer by default (those alert rules notify), over the configured EMAIL_URL.
Exits non-zero, saying why, when there is no one to send to or the mail server refuses.
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from alerting.models import AlertAudit
from alerting.rules import engineer_addresses
from core import audit
from core.commands import audit_reason
from core.mail import TransportError, dashboard_link, send_email, templated_email


class Command(BaseCommand):
    help = "Send a test alert email to the engineers (or --to addresses) now, and audit it."

    def add_arguments(self, parser):
        parser.add_argument("--reason", required=True, help="why: written to the audit log and the email")
        parser.add_argument("--to", nargs="+", default=[], metavar="ADDRESS", help="instead of the engineers")

    def handle(self, *args, reason: str, to: list[str], **options):
        why = audit_reason("send_test_alert", reason)
        recipients = sorted(set(to or engineer_addresses()))
        if not recipients:
            raise CommandError("No one to send to: no engineer has an email address (or give --to).")
        context = {"now": timezone.now(), "reason": reason, "link": dashboard_link(reverse("alerting:alerts"))}
        try:
            send_email(templated_email("test-alert", context, recipients))
        except TransportError as error:
            raise CommandError(f"The test alert was not sent: {error.message}") from error
        with transaction.atomic():
            audit.record(None, AlertAudit.TEST_ALERT_SENT, "test alert email", {}, {"recipients": recipients}, why)
        self.stdout.write(f"Test alert sent to {', '.join(recipients)}.")
