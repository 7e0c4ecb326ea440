"""The risk register, headroom and over-commitment follow the live state they watch."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from alerting.models import AlertRule, RuleKind
from dashboard import risk
from fleet.models import ScalingGroup, ScalingPolicy
from monitoring import servers
from monitoring.models import MetricSource, Rollup, ServerReport, UploadServer
from partners import changes
from partners.models import ConfigVersion
from tests.factories import make_local_group, make_partner

pytestmark = pytest.mark.django_db
GB = 10**9


def entry(key: str, now=None) -> risk.RiskEntry:
    return {item.key: item for item in risk.register(now)}[key]


def status(key: str, now=None) -> str:
    return entry(key, now).status


def make_live_server(
    name: str, ops_user, cpu_percent: float = 50.0, config_version: int | None = None, clients: dict | None = None
) -> UploadServer:
    server, _ = servers.register_server(ops_user, name, "test")
    now = timezone.now()
    version = config_version if config_version is not None else newest_version()
    UploadServer.objects.filter(pk=server.pk).update(
        last_seen_at=now,
        silent_after=now + timedelta(minutes=5),
        last_cpu_percent=cpu_percent,
        last_config_version=version,
        last_uploads_in_progress=sum(c["uploads_in_progress"] for c in (clients or {}).values()) + 2,
        last_bytes_in_flight=sum(c["bytes_in_flight"] for c in (clients or {}).values()) + 10**8,
    )
    server.refresh_from_db()
    ServerReport.objects.create(
        server=server,
        sequence=1,
        received_at=now,
        interval_seconds=5,
        cpu_percent=cpu_percent,
        config_version=version,
        uploads_in_progress=server.last_uploads_in_progress,
        bytes_in_flight=server.last_bytes_in_flight,
        admitted=0,
        throttled=0,
        timed_out=0,
        completed=0,
        clients=clients or {},
    )
    return server


def newest_version() -> int:
    return ConfigVersion.objects.filter(pk=1).values_list("value", flat=True).first() or 0


def test_the_register_has_the_eight_entries_with_control_links(ops_user):
    entries = risk.register()
    assert [item.key for item in entries] == [
        "no-scaling-policy",
        "single-server",
        "no-cpu-alert",
        "partner-without-limits",
        "servers-behind-config",
        "collector-failing",
        "long-pause",
        "max-capacity-too-low",
    ]
    assert all(item.status in ("open", "ok") and item.evidence and item.control_url.startswith("/") for item in entries)


def test_no_scaling_policy_turns_on_and_off(ops_user):
    group = make_local_group("risk-fleet")
    ScalingPolicy.objects.update(enabled=False)
    assert status("no-scaling-policy") == "open"
    policy = ScalingPolicy.objects.create(group=group, enabled=True)
    assert status("no-scaling-policy") == "ok"
    assert "risk-fleet" in entry("no-scaling-policy").evidence
    policy.enabled = False
    policy.save()
    assert status("no-scaling-policy") == "open"


def test_single_server_turns_on_and_off(ops_user):
    first = make_live_server("upload-1", ops_user)
    assert status("single-server") == "open"
    make_live_server("upload-2", ops_user)
    assert status("single-server") == "ok"
    assert "2 upload servers live" in entry("single-server").evidence
    servers.revoke_server(first, ops_user, "retired")
    assert status("single-server") == "open"


def test_no_cpu_alert_rule_turns_on_and_off(ops_user):
    AlertRule.objects.filter(metric="cpu_percent").update(enabled=False)
    assert status("no-cpu-alert") == "open"
    rule = AlertRule.objects.create(
        slug="cpu-high",
        name="Fleet CPU high",
        kind=RuleKind.METRIC,
        metric="cpu_percent",
        subject="fleet",
        threshold=80,
        window_seconds=300,
    )
    assert status("no-cpu-alert") == "ok"
    assert "Fleet CPU high" in entry("no-cpu-alert").evidence
    rule.enabled = False
    rule.save()
    assert status("no-cpu-alert") == "open"


def test_partner_without_limits_turns_on_and_off(ops_user, partner_a):
    assert status("partner-without-limits") == "ok"
    open_partner = make_partner("Open Archive", ops_user)
    assert status("partner-without-limits") == "open"
    assert "Open Archive" in entry("partner-without-limits").evidence
    changes.change_limits(open_partner, ops_user, {"max_concurrent_uploads": 4}, "cap it", None)
    assert status("partner-without-limits") == "ok"


def test_servers_behind_config_turn_on_and_off(ops_user, partner_a):
    server = make_live_server("upload-1", ops_user)
    assert status("servers-behind-config") == "ok"
    changes.change_limits(partner_a, ops_user, {"max_concurrent_uploads": 8}, "lower", None)
    assert status("servers-behind-config") == "open"
    assert f"upload-1 (v{server.last_config_version})" in entry("servers-behind-config").evidence
    UploadServer.objects.filter(pk=server.pk).update(last_config_version=newest_version())
    assert status("servers-behind-config") == "ok"


def test_collector_failing_turns_on_and_off():
    MetricSource.objects.all().delete()
    source = MetricSource.objects.create(kind=MetricSource.Kind.SQS_QUEUE, name="Video")
    assert status("collector-failing") == "ok"
    now = timezone.now()
    source.last_error, source.last_error_at = "AccessDenied", now
    source.save()
    assert status("collector-failing") == "open"
    assert "AccessDenied" in entry("collector-failing").evidence
    source.last_success_at = now + timedelta(minutes=1)
    source.save()
    assert status("collector-failing") == "ok"


@override_settings(RISK_PAUSE_DAYS=2)
def test_a_partner_pause_on_for_days_turns_on_and_off(ops_user, partner_a):
    in_three_days = timezone.now() + timedelta(days=3)
    assert status("long-pause", in_three_days) == "ok"
    changes.pause(partner_a, ops_user, "storage migration", None)
    assert status("long-pause", timezone.now() + timedelta(days=1)) == "ok", "a day is not days"
    assert status("long-pause", in_three_days) == "open"
    assert "TheirStory (paused 3.0 days ago)" in entry("long-pause", in_three_days).evidence
    changes.resume(partner_a, ops_user, "done")
    assert status("long-pause", in_three_days) == "ok"


@override_settings(RISK_PAUSE_DAYS=2)
def test_the_pause_of_all_partners_on_for_days_turns_on_and_off(ops_user):
    in_three_days = timezone.now() + timedelta(days=3)
    changes.pause(None, ops_user, "incident", None)
    assert status("long-pause", in_three_days) == "open"
    assert "all partners" in entry("long-pause", in_three_days).evidence
    changes.resume(None, ops_user, "over")
    assert status("long-pause", in_three_days) == "ok"


def cpu_minute(minute, server_name: str, cpu_percent: float) -> Rollup:
    return Rollup.objects.create(
        metric="cpu_percent",
        subject=f"server:{server_name}",
        resolution_seconds=60,
        bucket_start=minute,
        sample_count=1,
        total=cpu_percent,
        minimum=cpu_percent,
        maximum=cpu_percent,
    )


def test_max_capacity_too_low_for_last_weeks_peak_turns_on_and_off():
    ScalingGroup.objects.all().delete()
    group = make_local_group("local-fleet", max_capacity=2)
    ScalingPolicy.objects.create(group=group, target_cpu_percent=60)
    minute = timezone.now().replace(second=0, microsecond=0) - timedelta(days=2)
    assert status("max-capacity-too-low") == "ok"
    # Two servers at 90 %: 14.4 cores, which 2 servers (16 cores) would run at 90 % > 60 %.
    cpu_minute(minute, "upload-1", 90)
    cpu_minute(minute, "upload-2", 90)
    cpu_minute(minute + timedelta(minutes=1), "upload-1", 20)
    assert status("max-capacity-too-low") == "open"
    assert "peak 14.4 cores" in entry("max-capacity-too-low").evidence
    group.max_capacity = 4  # 32 cores: 45 % at the peak
    group.save()
    assert status("max-capacity-too-low") == "ok"
    group.max_capacity = 2
    group.save()
    assert status("max-capacity-too-low", minute + timedelta(days=8)) == "ok", "the peak left the week"


def test_headroom_and_partner_shares_come_from_the_latest_reports(ops_user, partner_a, partner_b):
    make_live_server(
        "upload-1",
        ops_user,
        cpu_percent=50,
        clients={"theirstory-sdk": {"uploads_in_progress": 6, "bytes_in_flight": 3 * 10**8}},
    )
    make_live_server("upload-2", ops_user, cpu_percent=25)
    room = risk.headroom()
    assert room.live_servers == 2 and room.capacity_cores == 16
    assert room.demand_cores == pytest.approx(6.0)  # 4 + 2 cores
    assert room.uploads_in_progress == 10
    shares = {share.name: share for share in room.partner_shares}
    assert shares["TheirStory"].uploads_share_percent == pytest.approx(60.0)
    assert shares["TheirStory"].bytes_share_percent == pytest.approx(60.0)  # 3 of 5 × 10^8
    assert shares[partner_b.name].uploads_in_progress == 0


def test_overcommitment_uses_the_load_model_and_warns_above_the_ratio(ops_user, partner_a):
    make_live_server("upload-1", ops_user)
    make_live_server("upload-2", ops_user)
    model = risk.load_model()
    with override_settings(RISK_OVERCOMMIT_WARNING_RATIO=1.5):
        # TheirStory alone: 16 uploads of 16 cores' worth (one core each), 40 GB of 2 × 8 GB.
        load = risk.overcommitment(model=model)
        assert load.concurrency_capacity == 16
        assert load.bytes_capacity == pytest.approx(2 * model.server_bytes_per_second() * 60)
        assert load.concurrency_ratio == pytest.approx(1.0)
        assert load.bytes_ratio == pytest.approx(40 * GB / (16 * GB))
        assert load.warning, "40 GB of bytes caps is 2.5× what the fleet takes in"
        changes.change_limits(partner_a, ops_user, {"max_bytes_in_flight": 20 * GB}, "fit", None)
        assert risk.overcommitment(model=model).bytes_ratio == pytest.approx(1.25)
        assert not risk.overcommitment(model=model).warning
        changes.change_limits(partner_a, ops_user, {"max_concurrent_uploads": 25}, "more", None)
        assert risk.overcommitment(model=model).concurrency_ratio == pytest.approx(25 / 16)
        assert risk.overcommitment(model=model).warning
    with override_settings(RISK_OVERCOMMIT_WARNING_RATIO=2.0):
        assert not risk.overcommitment(model=model).warning


def test_a_partner_without_caps_makes_the_commitment_unbounded(ops_user, partner_a):
    make_partner("Open Archive", ops_user)
    load = risk.overcommitment()
    assert load.uncapped_partners == ["Open Archive"] and load.concurrency_ratio is None and load.warning
