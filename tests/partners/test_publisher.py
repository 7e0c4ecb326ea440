"""The shared config table: rows, versions, atomicity with the audit log, NOTIFY."""

import threading
from unittest import mock

import pytest
from django.db import DatabaseError, close_old_connections, connection
from django.urls import reverse

from core.models import AuditEntry
from monitoring import servers
from partners import changes, publisher
from partners.models import Partner, UploadLimitRow
from tests.factories import make_partner, postgres_only


def test_every_change_gets_a_higher_version(ops_user, partner_a, partner_b):
    versions = [UploadLimitRow.objects.get(client_id="fas-importer").version]
    versions.append(changes.change_limits(partner_a, ops_user, {"burst": 5}, "t", None).version)
    versions.append(changes.pause(partner_b, ops_user, "t", None).version)
    versions.append(changes.change_default_limits(ops_user, {"max_concurrent_uploads": 3}, "t", None).version)
    assert versions == sorted(set(versions))
    assert UploadLimitRow.objects.order_by("-version").first().version == versions[-1]


def test_a_partner_whose_client_id_changes_moves_to_a_new_row(ops_user, partner_a):
    changes.change_partner(partner_a, ops_user, {"client_id": "theirstory-v2"}, "new app", None)
    assert not UploadLimitRow.objects.filter(client_id="theirstory-sdk").exists()
    assert UploadLimitRow.objects.get(client_id="theirstory-v2").max_concurrent_uploads == 16


def test_the_defaults_row_carries_the_live_server_count(settings, ops_user):
    settings.FLEET_CONFIGURED_SERVER_COUNT = 7
    servers.count_live_servers()  # as the monitoring worker does each minute; none is live: the fleet's size
    changes.change_default_limits(ops_user, {"requests_per_minute": 100}, "t", None)
    row = UploadLimitRow.objects.get(client_id="*")
    assert row.requests_per_minute == 100 and row.live_server_count == 7


@pytest.mark.django_db(transaction=True)
def test_publishing_outside_a_transaction_is_refused(partner_a):
    with pytest.raises(publisher.PublishError):
        publisher.publish_partner(partner_a)


def test_a_publish_that_fails_midway_leaves_limits_audit_and_table_unchanged(login, ops_user, partner_a):
    before = (
        Partner.objects.get(pk=partner_a.pk).limit_values(),
        AuditEntry.objects.count(),
        list(UploadLimitRow.objects.values().order_by("client_id")),
    )
    failing_write = mock.patch.object(
        UploadLimitRow.objects, "update_or_create", side_effect=DatabaseError("disk full")
    )
    with failing_write:
        response = login(ops_user).post(
            reverse("partners:limits", args=[partner_a.slug]),
            {
                "limits-requests_per_minute": "60",
                "limits-max_concurrent_uploads": "2",
                "limits-reason": "tighten",
                "limits-revision": partner_a.revision,
            },
        )
    assert response.status_code == 503
    assert "could not be saved and published" in response.content.decode()
    after = (
        Partner.objects.get(pk=partner_a.pk).limit_values(),
        AuditEntry.objects.count(),
        list(UploadLimitRow.objects.values().order_by("client_id")),
    )
    assert after == before


def test_a_failed_pause_publish_keeps_the_partner_running(ops_user, partner_a):
    with mock.patch.object(publisher, "next_version", side_effect=DatabaseError("gone")):
        with pytest.raises(DatabaseError):
            changes.pause(partner_a, ops_user, "x", None)
    assert not Partner.objects.get(pk=partner_a.pk).paused
    assert not UploadLimitRow.objects.get(client_id="theirstory-sdk").paused


def test_republish_all_repairs_a_drifted_table(ops_user, partner_a):
    from django.db import transaction

    UploadLimitRow.objects.filter(client_id="theirstory-sdk").update(max_concurrent_uploads=999)
    UploadLimitRow.objects.create(client_id="ghost", priority="bulk", version=1, updated_at="2026-01-01T00:00Z")
    with transaction.atomic():
        publisher.republish_all()
    assert UploadLimitRow.objects.get(client_id="theirstory-sdk").max_concurrent_uploads == 16
    assert not UploadLimitRow.objects.filter(client_id="ghost").exists()


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_versions_stay_strictly_increasing_under_concurrent_saves(ops_user):
    partners = [make_partner(f"Partner {i}", ops_user) for i in range(4)]
    versions: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(partners))

    def save_many(partner):
        try:
            start.wait()
            for n in range(15):
                result = changes.change_limits(partner, ops_user, {"max_concurrent_uploads": n + 1}, f"load {n}", None)
                versions.append(result.version)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=save_many, args=(p,)) for p in partners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(versions) == 60 and len(set(versions)) == 60, "every commit has its own version"
    audit_versions = len(AuditEntry.objects.filter(reason__startswith="load"))
    assert audit_versions == 60
    top = UploadLimitRow.objects.order_by("-version").first().version
    assert top == max(versions)


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_commit_notifies_listeners_with_its_version(ops_user, partner_a):
    import psycopg

    settings_dict = connection.settings_dict
    listener = psycopg.connect(
        host=settings_dict["HOST"],
        port=settings_dict["PORT"],
        user=settings_dict["USER"],
        password=settings_dict["PASSWORD"] or None,
        dbname=settings_dict["NAME"],
        autocommit=True,
    )
    try:
        listener.execute("LISTEN upload_limits")
        version = changes.change_limits(partner_a, ops_user, {"burst": 7}, "notify", None).version
        payloads = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
    finally:
        listener.close()
    assert payloads == [str(version)]


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_change_notifies_nobody(ops_user, partner_a):
    import psycopg

    settings_dict = connection.settings_dict
    listener = psycopg.connect(
        host=settings_dict["HOST"],
        port=settings_dict["PORT"],
        user=settings_dict["USER"],
        password=settings_dict["PASSWORD"] or None,
        dbname=settings_dict["NAME"],
        autocommit=True,
    )
    try:
        listener.execute("LISTEN upload_limits")
        with mock.patch.object(AuditEntry.objects, "create", side_effect=DatabaseError("boom")):
            with pytest.raises(DatabaseError):
                changes.change_limits(partner_a, ops_user, {"burst": 9}, "x", None)
        payloads = [n.payload for n in listener.notifies(timeout=1, stop_after=1)]
    finally:
        listener.close()
    assert payloads == []
