"""Email: one message from three templates, sent with a bounded timeout.

Every email the app sends (alerts, reminders of temporary changes, the weekly summary) is
rendered from `emails/<name>-subject.txt`, `-body.txt` and `-body.html`, and sent by
send_email(), whose failures come out as TransportError: permanent (a refused address, nothing
to send to) or one that may pass (SMTP down, a timeout), which the caller retries.
"""

import smtplib

from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives, get_connection
from django.template.loader import render_to_string


class TransportError(Exception):
    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.message = message
        self.permanent = permanent


def templated_email(name: str, context: dict, recipients: list[str]) -> EmailMultiAlternatives:
    subject = " ".join(render_to_string(f"emails/{name}-subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject, render_to_string(f"emails/{name}-body.txt", context), settings.DEFAULT_FROM_EMAIL, recipients
    )
    message.attach_alternative(render_to_string(f"emails/{name}-body.html", context), "text/html")
    return message


def send_email(message: EmailMessage) -> None:
    """Send one message with ALERT_EMAIL_TIMEOUT_SECONDS per SMTP step; failures become TransportError."""
    try:
        message.connection = get_connection(fail_silently=False, timeout=settings.ALERT_EMAIL_TIMEOUT_SECONDS)
        message.send()
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as error:
        raise TransportError(f"SMTP refused the message: {error}", permanent=True) from error
    except (smtplib.SMTPException, OSError) as error:
        raise TransportError(f"{type(error).__name__}: {error}") from error


def dashboard_link(path: str) -> str:
    """An absolute link into the dashboard for an email (DASHBOARD_BASE_URL + path)."""
    return settings.DASHBOARD_BASE_URL.rstrip("/") + path
