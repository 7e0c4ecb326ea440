"""Load-coupled limits: the schedule, the limits it lowers and restores, the table, the gate, and
the pages that show them (ops' settings form: tests/partners/test_controls_load.py)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from core.models import AuditEntry
from fleet import load_coupling, tasks
from fleet.apps import LOAD_SCHEDULE_NAME
from monitoring import metrics
from monitoring.models import Rollup
from partners import changes
from partners.models import FleetSettings, Partner, PartnerAudit, UploadLimitRow
from tests.factories import on_postgres
from upload_gate import StaticSource, UploadGate

pytestmark = pytest.mark.django_db

GB = 10**9


def fleet_cpu(percent: float, minutes: int, now):
    """Rolled-up fleet CPU for the `minutes` whole minutes before now."""
    minute = metrics.bucket_start(now, 60)
    Rollup.objects.bulk_create(
        [
            Rollup(
                metric=metrics.CPU_PERCENT,
                subject=metrics.FLEET,
                resolution_seconds=60,
                bucket_start=minute - timedelta(minutes=m),
                sample_count=2,
                total=2 * percent,
                minimum=percent,
                maximum=percent,
            )
            for m in range(1, minutes + 1)
        ]
    )


def turn_on(ops_user, **values):
    fleet = FleetSettings.load()
    settings = {
        "load_control_enabled": True,
        "load_cpu_target_percent": 70.0,
        "load_window_seconds": 300,
        "load_decrease_factor": 0.5,
        "load_increase_step_percent": 25.0,
        **values,
    }
    changes.change_load_control_settings(ops_user, settings, "protect the fleet", fleet.revision)


def published(client_id):
    return UploadLimitRow.objects.get(client_id=client_id)


def test_the_schedule_runs_every_minute(ops_user):
    schedule = Schedule.objects.get(name=LOAD_SCHEDULE_NAME)
    assert schedule.func == "fleet.tasks.run_load_coupled_limits"
    assert schedule.schedule_type == Schedule.MINUTES and schedule.minutes == 1


def test_off_by_default_nothing_changes_under_overload(ops_user, partner_a):
    now = timezone.now()
    fleet_cpu(99, 10, now)
    assert load_coupling.run(now) is None
    assert published("theirstory-sdk").max_concurrent_uploads == 16
    assert not AuditEntry.objects.filter(action=PartnerAudit.EFFECTIVE_LIMITS_CHANGED).exists()


def test_an_overloaded_window_halves_bulk_limits_audited_as_system_and_published(ops_user, partner_a, partner_b):
    Partner.objects.filter(pk=partner_b.pk).update(priority="interactive")
    turn_on(ops_user)
    now = timezone.now()
    fleet_cpu(92, 6, now)
    version_before = published("theirstory-sdk").version
    assert tasks.run_load_coupled_limits() == "overload: 1 partner(s) changed"

    row = published("theirstory-sdk")
    assert (row.max_concurrent_uploads, row.max_bytes_in_flight) == (8, 20 * GB)
    assert row.reduced_limits == "max_concurrent_uploads,max_bytes_in_flight"
    assert row.version > version_before
    assert published("fas-importer").max_concurrent_uploads == 8, "interactive partners keep theirs"
    assert published("fas-importer").reduced_limits is None
    entry = AuditEntry.objects.get(action=PartnerAudit.EFFECTIVE_LIMITS_CHANGED)
    assert (entry.actor, entry.actor_name, entry.target) == (None, "system", partner_a)
    assert entry.before == {"effective_max_concurrent_uploads": 16, "effective_max_bytes_in_flight": 40 * GB}
    assert entry.after == {"effective_max_concurrent_uploads": 8, "effective_max_bytes_in_flight": 20 * GB}
    assert "above 70 %" in entry.reason
    partner_a.refresh_from_db()
    assert partner_a.max_concurrent_uploads == 16, "the configured limit is kept"


def test_the_gate_answers_503_reduced_capacity_over_the_lowered_limit(ops_user, partner_a):
    turn_on(ops_user)
    now = timezone.now()
    fleet_cpu(92, 6, now)
    load_coupling.run(now)
    rows = [dict(row) for row in UploadLimitRow.objects.values()]
    with UploadGate(source=StaticSource(rows), start=False, jitter_fraction=0) as gate:
        admitted = [gate.admit("theirstory-sdk", 1) for _ in range(4)]  # 8 fleet-wide, 2 servers
        decision = gate.admit("theirstory-sdk", 1)
    assert all(admitted[:4])
    assert decision.status == 503
    assert decision.as_dict()["type"] == "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity"
    assert '"inflight";q=4;qu="concurrent-requests"' in decision.headers()["RateLimit-Policy"]


def test_quiet_windows_grow_the_limits_back_then_the_reduction_is_lifted(ops_user, partner_a):
    turn_on(ops_user)
    start = timezone.now()
    fleet_cpu(92, 6, start)
    load_coupling.run(start)
    Rollup.objects.all().delete()
    later = start + timedelta(minutes=6)
    fleet_cpu(30, 6, later)
    load_coupling.run(later)
    assert published("theirstory-sdk").max_concurrent_uploads == 12  # 8 + 25 % of 16
    last = start + timedelta(minutes=12)
    Rollup.objects.all().delete()
    fleet_cpu(30, 6, last)
    load_coupling.run(last)
    row = published("theirstory-sdk")
    assert (row.max_concurrent_uploads, row.reduced_limits) == (16, None)
    partner_a.refresh_from_db()
    assert partner_a.reduced_limits() == [] and partner_a.effective_reason == ""


def test_turning_it_off_restores_the_configured_limits_as_system(ops_user, partner_a):
    turn_on(ops_user)
    now = timezone.now()
    fleet_cpu(92, 6, now)
    load_coupling.run(now)
    changes.change_load_control_settings(
        ops_user, {"load_control_enabled": False}, "enough", FleetSettings.load().revision
    )
    load_coupling.run(now + timedelta(minutes=1))
    row = published("theirstory-sdk")
    assert (row.max_concurrent_uploads, row.reduced_limits) == (16, None)
    entry = AuditEntry.objects.filter(action=PartnerAudit.EFFECTIVE_LIMITS_CHANGED).first()
    assert entry.actor_name == "system" and "turned off" in entry.reason


def test_bulk_partners_keep_within_the_unreserved_share_of_the_fleet(ops_user, partner_a, settings):
    # 2 configured servers × 10 uploads each = 20; 30 % reserved leaves 14 for bulk partners.
    turn_on(ops_user, load_server_upload_capacity=10, load_reserved_share_percent=30.0)
    now = timezone.now()
    fleet_cpu(50, 6, now)
    load_coupling.run(now)
    assert published("theirstory-sdk").max_concurrent_uploads == 14
    assert "70 % of fleet capacity" in Partner.objects.get(pk=partner_a.pk).effective_reason


def test_partner_page_and_controls_page_show_effective_beside_configured(client, login, ops_user, partner_a):
    turn_on(ops_user)
    now = timezone.now()
    fleet_cpu(92, 6, now)
    load_coupling.run(now)
    login(ops_user)
    page = client.get(reverse("partners:detail", args=["theirstory"])).content.decode()
    assert "lowered for load: 8" in page and "fleet CPU above 70 %" in page
    controls = client.get(reverse("partners:controls")).content.decode()
    assert "Load-coupled limits" in controls and "of 16" in controls and "fleet CPU above 70 %" in controls


@pytest.mark.skipif(on_postgres(), reason="PostgreSQL's integer column refuses the value; SQLite stored it")
def test_a_window_stored_before_it_was_bounded_does_not_stop_the_controller(ops_user, partner_a):
    turn_on(ops_user)
    FleetSettings.objects.update(load_window_seconds=2**40)  # what the form used to accept
    now = timezone.now()
    fleet_cpu(92, 6, now)
    assert load_coupling.run(now) is not None  # was OverflowError: date value out of range
    assert published("theirstory-sdk").max_concurrent_uploads == 16
