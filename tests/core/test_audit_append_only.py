"""On PostgreSQL the audit log is append-only in the database itself: raw SQL cannot rewrite it."""

import pytest
from django.db import DatabaseError, connection, transaction

from core.models import AuditEntry
from tests.factories import postgres_only

pytestmark = postgres_only
TABLE = AuditEntry._meta.db_table


def run_raw(sql: str, params=()) -> None:
    # A savepoint, so the refused statement leaves the test's transaction usable.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_a_raw_update_of_an_audit_entry_is_refused(partner_a):
    entry = AuditEntry.objects.order_by("id").first()
    with pytest.raises(DatabaseError, match="append-only: UPDATE"):
        run_raw(f"UPDATE {TABLE} SET reason = %s WHERE id = %s", ["rewritten", entry.pk])
    assert AuditEntry.objects.get(pk=entry.pk).reason == entry.reason


def test_a_raw_delete_of_audit_entries_is_refused(partner_a):
    count = AuditEntry.objects.count()
    with pytest.raises(DatabaseError, match="append-only: DELETE"):
        run_raw(f"DELETE FROM {TABLE}")
    assert AuditEntry.objects.count() == count > 0


def test_truncate_is_refused_unless_the_session_allows_it_on_purpose(partner_a):
    count = AuditEntry.objects.count()
    with pytest.raises(DatabaseError, match="append-only: TRUNCATE"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL upload_ops.allow_audit_truncate = 'off'")
            # The test's own inserts left deferred foreign-key checks, which TRUNCATE refuses on its own.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"TRUNCATE {TABLE}")
    assert AuditEntry.objects.count() == count > 0


def test_new_entries_are_still_appended(ops_user, partner_a):
    from partners import changes

    before = AuditEntry.objects.count()
    changes.pause(partner_a, ops_user, "still appendable", None)
    assert AuditEntry.objects.count() == before + 1


@pytest.mark.django_db(transaction=True)
def test_transactional_tests_still_flush_the_database(ops_user, partner_a):
    """This test commits for real; its teardown's flush (TRUNCATE) must succeed for the next test."""
    assert AuditEntry.objects.exists()
