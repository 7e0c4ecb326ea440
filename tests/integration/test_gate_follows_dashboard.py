"""End to end: the dashboard's changes reach a real UploadGate, and its reports reach the dashboard.

The gate reads the test database itself, as an upload server would read the production one:
- PostgreSQL: a DSN built from the test database's settings; the poll interval is 30 s, so a
  change seen within the guard below can only have come by LISTEN/NOTIFY;
- SQLite: pytest-django's test database is in memory, but a shared-cache one
  (`file:memorydb_default?mode=memory&cache=shared`): a second connection in this process that
  opens the same URI sees the same database, so the real SqliteSource reads it through that
  URI (read-only by `PRAGMA query_only`). The gate polls every 50 ms there.

Waits are bounded guards around conditions; nothing asserts on elapsed time.
"""

import sqlite3
import time

import pytest
from django.db import connection, transaction

from monitoring import servers
from monitoring.models import ServerReport, UploadServer
from partners import changes, publisher
from partners.models import UploadLimitRow
from tests.factories import on_postgres, postgres_only
from upload_gate import PostgresSource, SqliteSource, UploadGate
from upload_gate.reporter import StatusReporter

pytestmark = pytest.mark.django_db(transaction=True)

CLIENT = "theirstory-sdk"  # partner_a
CONFIGURED_FLEET = 4


def wait_until(predicate, timeout_seconds: float = 10.0) -> bool:
    """Poll a condition; the timeout guards the test, it is not what is asserted."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def source_on_the_test_database():
    """A gate source on the database this test runs on (the test database, not settings.DATABASES)."""
    settings_dict = connection.settings_dict
    if connection.vendor == "postgresql":
        from psycopg.conninfo import make_conninfo

        params = {
            "dbname": settings_dict["NAME"],
            "user": settings_dict.get("USER"),
            "password": settings_dict.get("PASSWORD"),
            "host": settings_dict.get("HOST"),
            "port": str(settings_dict.get("PORT") or ""),
        }
        return PostgresSource(make_conninfo(**{name: value for name, value in params.items() if value}))
    if connection.vendor == "sqlite":
        name = str(settings_dict["NAME"])
        if not connection.is_in_memory_db():
            return SqliteSource(name)  # a file: opened read-only (mode=ro) as in production
        if "cache=shared" not in name:
            pytest.skip(f"the in-memory test database {name!r} is private to Django's connection")

        def connect():
            conn = sqlite3.connect(name, uri=True, timeout=1.0, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA query_only = ON")  # a gate never writes
            return conn

        return SqliteSource(name, connect=connect)
    pytest.skip(f"no upload gate source for {connection.vendor}")


@pytest.fixture
def fleet_of_four(settings, transactional_db):
    """Before any report, gates divide fleet-wide limits by the configured fleet size (here 4)."""
    settings.FLEET_CONFIGURED_SERVER_COUNT = CONFIGURED_FLEET
    servers.count_live_servers()  # as the monitoring worker does each minute: none is live yet


@pytest.fixture
def make_gate(transactional_db):
    """A real gate on the test database; closed before the test database is flushed."""
    gates = []

    def make(**kwargs):
        kwargs.setdefault("poll_interval_seconds", 30.0 if on_postgres() else 0.05)
        kwargs.setdefault("max_backoff_seconds", 0.2)  # a shared-cache SQLite read can meet a write lock
        kwargs.setdefault("jitter_fraction", 0)
        gate = UploadGate(source=source_on_the_test_database(), **kwargs)
        gates.append(gate)
        if on_postgres():
            assert wait_until(lambda: gate.refresher.listening), "LISTEN upload_limits never started"
        return gate

    yield make
    for gate in gates:
        gate.close()


def latest_version() -> int:
    return max(UploadLimitRow.objects.values_list("version", flat=True))


def test_limits_and_pauses_changed_on_the_dashboard_decide_the_gates_admissions(
    fleet_of_four, ops_user, partner_a, make_gate
):
    gate = make_gate()
    assert gate.config_version == latest_version()
    assert gate.live_server_count == CONFIGURED_FLEET
    # 16 concurrent uploads fleet-wide: this server's share is 16 / 4.
    assert gate.client_config(CLIENT)["server_share"]["max_concurrent_uploads"] == 4
    leases = [gate.admit(CLIENT, 1000).lease for _ in range(2)]
    assert all(leases)
    for lease in leases:
        gate.release(lease)

    lowered = changes.change_limits(
        partner_a, ops_user, {"max_concurrent_uploads": 1}, "storage is slow", partner_a.revision
    )
    assert wait_until(lambda: gate.config_version == lowered.version)
    first, second = gate.admit(CLIENT, 1000), gate.admit(CLIENT, 1000)
    assert first.admitted
    assert (second.admitted, second.status, second.limit) == (False, 429, "max_concurrent_uploads")
    assert gate.admit("someone-else", 1000).admitted  # other clients are not affected

    paused = changes.pause(partner_a, ops_user, "Storage migration until noon", None)
    assert wait_until(lambda: gate.config_version == paused.version)
    gate.release(first.lease)
    decision = gate.admit(CLIENT, 1000)
    assert (decision.admitted, decision.status, decision.limit, decision.reason) == (
        False,
        503,
        "paused",
        "Storage migration until noon",
    )

    resumed = changes.resume(partner_a, ops_user, "done")
    assert wait_until(lambda: gate.config_version == resumed.version)
    assert gate.admit(CLIENT, 1000).admitted
    if on_postgres():
        # With a 30 s poll, only the notifications brought the three changes in.
        assert gate.refresher.stats["notifications"] >= 3
        assert gate.refresher.stats["reloads_after_wake"] >= 3


@postgres_only
def test_on_postgresql_the_change_arrives_by_notify_not_by_the_poll(ops_user, partner_a, make_gate):
    gate = make_gate(poll_interval_seconds=3600)
    polls_before = gate.refresher.stats["polls"]
    wakes_before = gate.refresher.stats["reloads_after_wake"]
    result = changes.change_limits(partner_a, ops_user, {"burst": 5}, "smaller bursts", partner_a.revision)
    assert wait_until(lambda: gate.config_version == result.version)
    assert gate.refresher.stats["reloads_after_wake"] == wakes_before + 1
    assert gate.refresher.stats["polls"] <= polls_before + 2  # woken checks only, no timed polling
    assert gate.client_config(CLIENT)["fleet_limits"]["burst"] == 5


def test_a_report_from_the_real_reporter_is_stored_with_the_version_the_gate_applied(
    fleet_of_four, ops_user, partner_a, make_gate, live_server
):
    server, token = servers.register_server(ops_user, "upload-1", "integration test")
    gate = make_gate()
    version_applied = gate.config_version
    assert version_applied == latest_version() and gate.live_server_count == CONFIGURED_FLEET
    leases = [gate.admit(CLIENT, 5000).lease for _ in range(3)]
    gate.release(leases[0], "completed")
    gate.release(leases[1], "failed")
    gate.admit("alice", 100)  # a direct user: reported under `*`
    reporter = StatusReporter(
        gate, live_server.url, "upload-1", token, interval_seconds=5, cpu_percent=lambda: 12.5, start=False
    )
    try:
        assert reporter.send_now() == 1, reporter.last_error

        stored = ServerReport.objects.get(server=server)
        assert stored.config_version == version_applied
        assert (stored.cpu_percent, stored.interval_seconds) == (12.5, 5)
        assert stored.sequence == reporter.last_sequence
        assert stored.clients == {
            CLIENT: {
                "uploads_in_progress": 1,
                "bytes_in_flight": 5000,
                "admitted": 3,
                "throttled": 0,
                "timed_out": 0,
                "completed": 1,
                "failed": 1,
            },
            "*": {
                "uploads_in_progress": 1,
                "bytes_in_flight": 100,
                "admitted": 1,
                "throttled": 0,
                "timed_out": 0,
                "completed": 0,
                "failed": 0,
            },
        }
        server.refresh_from_db()
        assert server.last_config_version == version_applied and server.boot_id == reporter.boot_id

        # The report made this the one live server: the dashboard republished the `*` row with a
        # live count of 1, and the gate follows it, taking the whole fleet-wide limit.
        assert wait_until(lambda: gate.live_server_count == 1)
        assert gate.config_version == latest_version() > version_applied
        assert gate.client_config(CLIENT)["server_share"]["max_concurrent_uploads"] == 16

        assert reporter.send_now() == 1, reporter.last_error
        newest = ServerReport.objects.filter(server=server).latest("sequence")
        assert newest.config_version == gate.config_version
        assert newest.sequence == stored.sequence + 1
        assert newest.clients[CLIENT]["admitted"] == 0  # counts are per report, not cumulative
        assert UploadServer.objects.get(pk=server.pk).last_config_version == gate.config_version
        assert (reporter.sent, reporter.queued, reporter.dropped) == (2, 0, 0)
    finally:
        reporter.stop(final_report=False)


def test_shadow_values_set_on_the_dashboard_are_counted_by_the_gate_and_shown_on_the_partner_page(
    ops_user, partner_a, make_gate, live_server, login
):
    """Partner page form -> upload_limits -> gate counts -> real reporter -> report -> rollup -> page."""
    from django.urls import reverse

    from monitoring import rollups

    server, token = servers.register_server(ops_user, "upload-1", "integration test")
    with transaction.atomic():
        publisher.publish_defaults()  # one configured server: the gate enforces the whole limit
    gate = make_gate()
    client = login(ops_user)
    post = {
        f"shadow-shadow_{name}": ""
        for name in ("requests_per_minute", "burst", "max_bytes_in_flight", "daily_upload_bytes")
    }
    post.update(
        {
            "shadow-shadow_max_concurrent_uploads": "3",
            "shadow-reason": "would 3 be enough?",
            "shadow-revision": str(partner_a.revision),
        }
    )
    assert client.post(reverse("partners:shadow", args=[partner_a.slug]), post).status_code == 302
    assert wait_until(lambda: gate.client_config(CLIENT)["shadow_server_share"] is not None)
    share = gate.client_config(CLIENT)["server_share"]["max_concurrent_uploads"]

    decisions = [gate.admit(CLIENT, 1000) for _ in range(share + 1)]
    admitted = sum(decision.admitted for decision in decisions)
    assert admitted == share  # the enforced limit decides; the shadow one never rejects
    shadow_share = gate.client_config(CLIENT)["shadow_server_share"]["max_concurrent_uploads"]
    expected_would_have_throttled = len(decisions) - shadow_share

    reporter = StatusReporter(
        gate, live_server.url, "upload-1", token, interval_seconds=5, cpu_percent=lambda: 10.0, start=False
    )
    try:
        assert reporter.send_now() == 1, reporter.last_error
    finally:
        reporter.stop(final_report=False)
    stored = ServerReport.objects.get(server=server)
    assert stored.would_have_throttled == expected_would_have_throttled
    assert stored.clients[CLIENT]["would_have_throttled"] == expected_would_have_throttled
    assert stored.clients[CLIENT]["throttled"] == 1

    rollups.roll_up(stored.received_at + rollups.timedelta(minutes=2))
    page = client.get(reverse("partners:detail", args=[partner_a.slug]))
    [hour] = page.context["shadow_hours"]
    assert (hour["admitted"], hour["throttled"], hour["would_have_throttled"]) == (
        admitted,
        1,
        expected_would_have_throttled,
    )
