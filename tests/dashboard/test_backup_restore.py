"""A backup of the database restores with partners, the audit log (still append-only on
PostgreSQL) and the shared config table intact (docs/backup-restore.md)."""

import io
import shutil
import sqlite3
import subprocess
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

from core.models import AuditEntry
from monitoring.models import UploadServer
from partners import changes
from partners.models import ConfigVersion, Partner, UploadLimitRow
from tests.factories import postgres_only

AUDIT_TABLE = AuditEntry._meta.db_table
PARTNER_TABLE = Partner._meta.db_table
LIMITS_TABLE = UploadLimitRow._meta.db_table


def snapshot() -> dict:
    return {
        "partners": sorted(Partner.objects.values_list("client_id", "max_concurrent_uploads")),
        "audit": sorted(AuditEntry.objects.values_list("id", "action", "reason")),
        "limits": sorted(
            UploadLimitRow.objects.values_list("client_id", "max_concurrent_uploads", "version", "paused")
        ),
    }


def restored_snapshot(cursor) -> dict:
    cursor.execute(f"SELECT client_id, max_concurrent_uploads FROM {PARTNER_TABLE}")
    partners = sorted(cursor.fetchall())
    cursor.execute(f"SELECT id, action, reason FROM {AUDIT_TABLE}")
    audit = sorted(cursor.fetchall())
    cursor.execute(f"SELECT client_id, max_concurrent_uploads, version, paused FROM {LIMITS_TABLE}")
    limits = sorted((c, m, v, bool(p)) for c, m, v, p in cursor.fetchall())
    return {"partners": partners, "audit": audit, "limits": limits}


@pytest.fixture
def history(ops_user, partner_a, partner_b):
    changes.pause(partner_b, ops_user, "backlog import <b>tonight</b>", None)
    return snapshot()


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_pg_dump_and_pg_restore_keep_everything_and_the_audit_log_stays_append_only(history, tmp_path):
    # pg_dump reads committed data only: this test commits (transaction=True).
    db = connection.settings_dict
    where = ["-h", db["HOST"] or "127.0.0.1", "-p", str(db["PORT"] or 5432), "-U", db["USER"]]
    dump = tmp_path / "uploadops.dump"
    subprocess.run(["pg_dump", "-Fc", "--no-owner", *where, "-d", db["NAME"], "-f", str(dump)], check=True)

    restored = f"{db['NAME']}_restored"
    admin = psycopg.connect(host=where[1], port=where[3], user=db["USER"], dbname="postgres", autocommit=True)
    admin.execute(f'DROP DATABASE IF EXISTS "{restored}"')
    admin.execute(f'CREATE DATABASE "{restored}"')
    try:
        subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", *where, "-d", restored, str(dump)], check=True)
        with psycopg.connect(host=where[1], port=where[3], user=db["USER"], dbname=restored) as copy:
            assert restored_snapshot(copy.cursor()) == history
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                copy.execute(f"DELETE FROM {AUDIT_TABLE}")
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)')
        admin.close()


@pytest.mark.django_db(transaction=True)
def test_sqlite_backup_api_copies_a_consistent_database(history, tmp_path):
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite backup API; PostgreSQL is tried with pg_dump above")
    connection.ensure_connection()
    backup_path = tmp_path / "backup.sqlite3"
    with sqlite3.connect(backup_path) as backup:
        connection.connection.backup(backup)  # what `sqlite3 db.sqlite3 ".backup …"` does
    restored_path = tmp_path / "restored.sqlite3"
    shutil.copyfile(backup_path, restored_path)  # restore: the backup file replaces the database
    with sqlite3.connect(Path(restored_path)) as restored:
        assert restored_snapshot(restored.cursor()) == history


def test_after_restore_moves_the_version_past_what_servers_hold_and_republishes(ops_user, partner_a):
    """The restored counter is older than what servers applied: the next version must be newer."""
    restored_version = ConfigVersion.objects.get(pk=1).value
    UploadServer.objects.create(
        name="upload-1", token_hash="a" * 64, token_prefix="uos_aaaa", last_config_version=restored_version + 3
    )
    call_command("after_restore", "--min-version", str(restored_version + 10), stdout=io.StringIO())
    rows = UploadLimitRow.objects.all()
    assert {row.version > restored_version + 10 for row in rows} == {True}
    assert rows.get(client_id=partner_a.client_id).max_concurrent_uploads == partner_a.max_concurrent_uploads


def test_after_restore_uses_the_highest_version_a_server_reported(ops_user, partner_a):
    restored_version = ConfigVersion.objects.get(pk=1).value
    UploadServer.objects.create(
        name="upload-1", token_hash="b" * 64, token_prefix="uos_bbbb", last_config_version=restored_version + 50
    )
    call_command("after_restore", stdout=io.StringIO())
    assert UploadLimitRow.objects.order_by("version").first().version > restored_version + 50
