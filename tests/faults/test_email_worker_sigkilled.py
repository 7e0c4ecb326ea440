"""A process sending an alert email really killed (SIGKILL) inside the SMTP conversation:
the email is neither sent twice while the claim is fresh nor lost (the sweeper retries it
once). PostgreSQL only: the worker process must see the test's committed rows."""

import os
import signal
import socket
import subprocess
import threading
from datetime import timedelta

import pytest
from django.core import mail

from alerting import evaluation, notify
from alerting.models import Notification
from alerting.notify import deliver_due
from tests.factories import at, drive, postgres_only, sample, start_worker_process, wait_until

CPU = ("cpu_percent", "fleet")


class StuckSmtpServer:
    """Speaks SMTP on 127.0.0.1 up to the end of the message, then never answers: the
    sender is left inside the conversation, as with a server that hangs."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.message_sent = threading.Event()
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conversation, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conversation)
            threading.Thread(target=self._talk, args=(conversation,), daemon=True).start()

    def _talk(self, conversation: socket.socket) -> None:
        reader = conversation.makefile("rb")
        conversation.sendall(b"220 stuck.test ESMTP\r\n")
        in_data = False
        for line in reader:
            if in_data:
                if line in (b".\r\n", b".\n"):
                    self.message_sent.set()  # and no "250 OK" ever comes back
                continue
            command = line[:4].upper()
            if command == b"DATA":
                in_data = True
                conversation.sendall(b"354 go ahead\r\n")
            elif command == b"QUIT":
                return
            else:
                conversation.sendall(b"250 ok\r\n")

    def close(self) -> None:
        self.listener.close()
        for conversation in self.connections:
            conversation.close()


@pytest.fixture
def stuck_smtp():
    server = StuckSmtpServer()
    yield server
    server.close()


def start_sender(smtp_port: int, now_iso: str) -> subprocess.Popen:
    """What the every-minute alert task runs: notify.deliver_due(), over real SMTP."""
    return start_worker_process(
        "from django.conf import settings; from datetime import datetime; from alerting import notify;"
        "settings.EMAIL_BACKEND = 'django.core.mail.backends.smtp.EmailBackend';"
        f"settings.EMAIL_HOST, settings.EMAIL_PORT = '127.0.0.1', {smtp_port};"
        "settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False;"
        "settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = '';"
        "settings.ALERT_EMAIL_TIMEOUT_SECONDS = 300;"
        f"print(notify.deliver_due(datetime.fromisoformat({now_iso!r})))"
    )


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_an_email_worker_killed_mid_send_neither_sends_twice_nor_loses_the_email(stuck_smtp, engineer):
    drive(0, [90] * 5, CPU)
    sample(*CPU, at(5), 90)
    evaluation.evaluate(at(5))
    firing = Notification.objects.get(attempt=1, sent_at=None, error="")

    sender = start_sender(stuck_smtp.port, at(5).isoformat())
    try:
        assert wait_until(lambda: stuck_smtp.message_sent.is_set() or sender.poll() is not None), (
            "the worker never reached the end of the message"
        )
        assert sender.poll() is None, sender.communicate()
        os.killpg(sender.pid, signal.SIGKILL)  # the worker dies waiting for SMTP's "250 OK"
    finally:
        sender.wait(timeout=30)

    firing.refresh_from_db()
    assert firing.claimed_at is not None and firing.sent_at is None and firing.error == ""
    mail.outbox.clear()
    assert deliver_due(at(6)) == 0, "a fresh claim may still be sending: nobody else sends it"
    stale = firing.claimed_at + timedelta(seconds=notify.ABANDONED_CLAIM_SECONDS + 1)
    assert deliver_due(stale) == 0
    firing.refresh_from_db()
    assert "worker stopped while sending" in firing.error
    retry = Notification.objects.get(attempt=2)
    assert deliver_due(retry.due_at) == 1
    assert deliver_due(retry.due_at + timedelta(hours=1)) == 0
    assert len(mail.outbox) == 1 and Notification.objects.filter(sent_at__isnull=False).count() == 1
