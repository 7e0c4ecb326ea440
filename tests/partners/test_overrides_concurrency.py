"""Two workers reverting the same override at once: one revert, one audit entry, one reminder."""

import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import close_old_connections, connection
from django.utils import timezone

from core.models import AuditEntry
from partners import overrides
from partners.models import PartnerAudit, UploadLimitRow
from tests.factories import postgres_only


def run_in_two_workers(job) -> list:
    results: list = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def worker():
        try:
            start.wait()
            results.append(job())
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    return results


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_workers_revert_an_override_once(manager_a, partner_a):
    ends_at = timezone.now() + timedelta(hours=1)
    overrides.start_override(partner_a, manager_a, {"max_concurrent_uploads": 30}, ends_at, "backlog", None)
    results = run_in_two_workers(lambda: overrides.end_due_overrides(now=ends_at))
    assert sorted(results) == [0, 1]
    assert UploadLimitRow.objects.get(client_id="theirstory-sdk").max_concurrent_uploads == 16
    assert AuditEntry.objects.filter(action=PartnerAudit.OVERRIDE_ENDED).count() == 1


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_workers_send_a_reminder_once(manager_a, partner_a):
    ends_at = timezone.now() + timedelta(hours=1)
    overrides.start_override(partner_a, manager_a, {"max_concurrent_uploads": 30}, ends_at, "backlog", None)
    results = run_in_two_workers(lambda: overrides.send_due_reminders(now=ends_at - timedelta(minutes=5)))
    assert sorted(results) == [0, 1]
    assert len(mail.outbox) == 1
