"""The standing risk assessment of CPU overuse, computed from the live state.

Headroom (fleet capacity against demand now), over-commitment (partner caps against what the
fleet can carry) and the risk register. Capacity comes from fleet_sim's LoadModel, the model
the simulated fleet and the what-if run: one model, not two. Every function takes `now` so
tests and the weekly summary can ask about any moment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from alerting.models import AlertRule, RuleKind
from fleet.models import ScalingGroup, ScalingPolicy
from fleet_sim.model import LoadModel
from monitoring import metrics, queries
from monitoring.models import MetricSource, UploadServer
from partners.models import Override, Partner, UploadLimitRow

OPEN = "open"
OK = "ok"
PEAK_WINDOW_DAYS = 7


def load_model() -> LoadModel:
    return LoadModel()


# ---- headroom now ---------------------------------------------------------------------------


@dataclass
class PartnerShare:
    name: str
    client_id: str
    uploads_in_progress: int
    bytes_in_flight: int
    uploads_share_percent: float
    bytes_share_percent: float
    url: str = ""


@dataclass
class Headroom:
    live_servers: int
    capacity_cores: int
    demand_cores: float
    uploads_in_progress: int
    bytes_in_flight: int
    partner_shares: list[PartnerShare] = field(default_factory=list)

    @property
    def used_percent(self) -> float | None:
        return 100 * self.demand_cores / self.capacity_cores if self.capacity_cores else None

    @property
    def headroom_cores(self) -> float:
        return self.capacity_cores - self.demand_cores


def headroom(now: datetime | None = None, model: LoadModel | None = None) -> Headroom:
    """Live servers × cores against the cores their last reported CPU uses."""
    now = now or timezone.now()
    model = model or load_model()
    live = list(UploadServer.live(now))
    demand_cores = sum((server.last_cpu_percent or 0) / 100 * model.server_cores for server in live)
    return Headroom(
        live_servers=len(live),
        capacity_cores=len(live) * model.server_cores,
        demand_cores=demand_cores,
        uploads_in_progress=sum(server.last_uploads_in_progress for server in live),
        bytes_in_flight=sum(server.last_bytes_in_flight for server in live),
        partner_shares=partner_shares(live),
    )


def partner_shares(live: list[UploadServer]) -> list[PartnerShare]:
    """Each partner's share of the uploads and bytes in flight, from each live server's latest
    report (its per-client figures); direct users make up the rest."""
    per_client = queries.latest_client_figures(live)
    all_uploads = sum(server.last_uploads_in_progress for server in live)
    all_bytes = sum(server.last_bytes_in_flight for server in live)
    shares = []
    for partner in Partner.objects.all():
        uploads, bytes_in_flight = per_client.get(partner.client_id, (0, 0))
        shares.append(
            PartnerShare(
                name=partner.name,
                client_id=partner.client_id,
                uploads_in_progress=uploads,
                bytes_in_flight=bytes_in_flight,
                uploads_share_percent=_percent(uploads, all_uploads),
                bytes_share_percent=_percent(bytes_in_flight, all_bytes),
                url=partner.get_absolute_url(),
            )
        )
    return sorted(shares, key=lambda share: (-share.bytes_share_percent, -share.uploads_share_percent, share.name))


def _percent(part: float, whole: float) -> float:
    return 100 * part / whole if whole else 0.0


# ---- over-commitment ------------------------------------------------------------------------


@dataclass
class Overcommitment:
    servers: int
    concurrency_caps: int
    bytes_caps: int
    concurrency_capacity: float
    bytes_capacity: float
    uncapped_partners: list[str]
    warning_ratio: float

    @property
    def concurrency_ratio(self) -> float | None:
        """None: some partner has no cap, so the sum is unbounded."""
        if self.uncapped_partners:
            return None
        return self.concurrency_caps / self.concurrency_capacity

    @property
    def bytes_ratio(self) -> float | None:
        if self.uncapped_partners:
            return None
        return self.bytes_caps / self.bytes_capacity

    @property
    def warning(self) -> bool:
        if self.uncapped_partners:
            return True
        return max(self.concurrency_ratio, self.bytes_ratio) > self.warning_ratio


def overcommitment(now: datetime | None = None, model: LoadModel | None = None) -> Overcommitment:
    """The partners' concurrency and bytes-in-flight caps added up, against what the fleet
    can carry under the load model.

    Concurrency: a partner's SDK request wants `cores_wanted(partner bandwidth)` cores, so
    the fleet carries cores ÷ that many at once. Bytes: what the fleet takes in within one
    request timeout; more in flight than that and parts start timing out.
    """
    now = now or timezone.now()
    model = model or load_model()
    server_count = UploadServer.live_count(now)
    concurrency_caps = bytes_caps = 0
    uncapped = []
    for partner in Partner.objects.all():
        concurrency = partner.effective_value("max_concurrent_uploads")
        bytes_in_flight = partner.effective_value("max_bytes_in_flight")
        if concurrency is None and bytes_in_flight is None:
            uncapped.append(partner.name)
            continue
        # A partner capped on one dimension only is bounded on the other by the first, through the model.
        concurrency_caps += concurrency if concurrency is not None else _uploads_for_bytes(bytes_in_flight, model)
        bytes_caps += bytes_in_flight if bytes_in_flight is not None else concurrency * model.part_bytes
    return Overcommitment(
        servers=server_count,
        concurrency_caps=concurrency_caps,
        bytes_caps=bytes_caps,
        concurrency_capacity=server_count
        * model.server_cores
        / model.cores_wanted(model.partner_bandwidth_bytes_per_second),
        bytes_capacity=server_count * model.server_bytes_per_second() * model.request_timeout_seconds,
        uncapped_partners=uncapped,
        warning_ratio=settings.RISK_OVERCOMMIT_WARNING_RATIO,
    )


def _uploads_for_bytes(bytes_in_flight: int, model: LoadModel) -> int:
    # Each upload has one part of part_bytes in flight at a time.
    return -(-bytes_in_flight // model.part_bytes)


# ---- the register ---------------------------------------------------------------------------


@dataclass
class RiskEntry:
    key: str
    title: str
    status: str
    evidence: str
    control: str
    control_url: str
    control_label: str

    @property
    def is_open(self) -> bool:
        return self.status == OPEN


def _entry(key, title, is_open, evidence, control, url_name, label) -> RiskEntry:
    return RiskEntry(
        key=key,
        title=title,
        status=OPEN if is_open else OK,
        evidence=evidence,
        control=control,
        control_url=reverse(url_name),
        control_label=label,
    )


def register(now: datetime | None = None, model: LoadModel | None = None) -> list[RiskEntry]:
    now = now or timezone.now()
    model = model or load_model()
    return [
        no_scaling_policy(),
        single_server(now),
        no_cpu_alert_rule(),
        partner_without_limits(),
        servers_behind_config(now),
        collector_failing(),
        long_pause(now),
        max_capacity_too_low(now, model),
    ]


def open_risks(now: datetime | None = None) -> list[RiskEntry]:
    return [entry for entry in register(now) if entry.is_open]


def no_scaling_policy() -> RiskEntry:
    enabled = list(ScalingPolicy.objects.filter(enabled=True).values_list("group__name", flat=True))
    groups = ScalingGroup.objects.count()
    evidence = (
        f"Automatic scaling is on for {', '.join(enabled)}."
        if enabled
        else f"No automatic scaling policy is on ({groups} scaling group{'s' if groups != 1 else ''}): "
        "the fleet grows only when someone scales it by hand."
    )
    return _entry(
        "no-scaling-policy",
        "No automatic scaling policy on",
        not enabled,
        evidence,
        "Turn on a group's target-tracking policy.",
        "fleet:groups",
        "Fleet",
    )


def single_server(now: datetime) -> RiskEntry:
    live = UploadServer.live(now).count()
    evidence = f"{live} upload server{'s' if live != 1 else ''} live now (reported within 3 intervals)."
    if live <= 1:
        evidence += " One busy or failed server takes every upload with it."
    return _entry(
        "single-server",
        "A single live server",
        live <= 1,
        evidence,
        "Scale the group to at least 2 servers, or raise its minimum.",
        "fleet:groups",
        "Fleet",
    )


def no_cpu_alert_rule() -> RiskEntry:
    rules = list(AlertRule.objects.filter(enabled=True, kind=RuleKind.METRIC, metric=metrics.CPU_PERCENT))
    evidence = (
        f"CPU alert rule{'s' if len(rules) != 1 else ''} on: "
        + "; ".join(f"{rule.name} ({rule.condition_text()})" for rule in rules)
        + "."
        if rules
        else "No enabled alert rule watches CPU %: overuse is noticed only on the charts."
    )
    return _entry(
        "no-cpu-alert",
        "No CPU alert rule enabled",
        not rules,
        evidence,
        "Enable or add an alert rule on CPU %.",
        "alerting:alerts",
        "Alerts",
    )


def partner_without_limits() -> RiskEntry:
    uncapped = [partner.name for partner in Partner.objects.all() if not partner.has_limits()]
    evidence = (
        f"No limit at all on: {', '.join(uncapped)}."
        if uncapped
        else f"All {Partner.objects.count()} partners have at least one limit."
    )
    return _entry(
        "partner-without-limits",
        "A partner without limits",
        bool(uncapped),
        evidence,
        "Set the partner's concurrency and bytes-in-flight limits.",
        "partners:list",
        "Partners",
    )


def servers_behind_config(now: datetime) -> RiskEntry:
    newest = UploadLimitRow.published_version() or 0
    behind = [
        f"{server.name} (v{server.last_config_version if server.last_config_version is not None else '—'})"
        for server in UploadServer.live(now)
        if server.last_config_version is None or server.last_config_version < newest
    ]
    evidence = (
        f"Behind the newest config version v{newest}: {', '.join(behind)}."
        if behind
        else f"Every live server reports config version v{newest}."
    )
    return _entry(
        "servers-behind-config",
        "Servers not on the newest config version",
        bool(behind),
        evidence,
        "Check the servers reach the database; a server stuck behind enforces old limits.",
        "monitoring:servers",
        "Servers",
    )


def collector_failing() -> RiskEntry:
    failing = [source for source in MetricSource.objects.filter(enabled=True) if source.failing]
    evidence = (
        "Failing: " + "; ".join(f"{source} — {source.last_error[:200]}" for source in failing) + "."
        if failing
        else f"{MetricSource.objects.filter(enabled=True).count()} metric collectors, none failing."
    )
    return _entry(
        "collector-failing",
        "A metric collector failing",
        bool(failing),
        evidence,
        "Fix the collector's credentials or name, or disable it in the admin.",
        "alerting:alerts",
        "Alerts",
    )


def long_pause(now: datetime) -> RiskEntry:
    days = settings.RISK_PAUSE_DAYS
    since = now - timedelta(days=days)
    pauses = Override.objects.active().pauses().filter(created_at__lte=since).select_related("partner")
    long = sorted(f"{pause.subject_name} (paused {_days_ago(pause.created_at, now)})" for pause in pauses)
    evidence = (
        f"On for more than {days:g} days: {', '.join(long)}."
        if long
        else f"No pause has been on for more than {days:g} days."
    )
    return _entry(
        "long-pause",
        f"A pause on for more than {days:g} days",
        bool(long),
        evidence,
        "Resume it, or lower the partner's limits instead of blocking it.",
        "partners:controls",
        "Global controls",
    )


def _days_ago(moment: datetime, now: datetime) -> str:
    return f"{(now - moment).total_seconds() / 86400:.1f} days ago"


@dataclass
class GroupPeak:
    group: ScalingGroup
    peak_demand_cores: float | None
    max_capacity_cores: int
    target_cpu_percent: float

    @property
    def too_low(self) -> bool:
        if self.peak_demand_cores is None:
            return False
        return 100 * self.peak_demand_cores / self.max_capacity_cores > self.target_cpu_percent


def group_peaks(now: datetime, model: LoadModel) -> list[GroupPeak]:
    return [
        GroupPeak(
            group,
            peak_demand_cores(group, now, model),
            group.max_capacity * model.server_cores,
            _target_cpu_percent(group),
        )
        for group in ScalingGroup.objects.select_related("policy")
    ]


def _target_cpu_percent(group: ScalingGroup) -> float:
    try:
        return group.policy.target_cpu_percent
    except ScalingPolicy.DoesNotExist:
        return ScalingPolicy._meta.get_field("target_cpu_percent").default


def peak_demand_cores(group: ScalingGroup, now: datetime, model: LoadModel) -> float | None:
    """The busiest minute of the last week: the group's servers' CPU added up, in cores."""
    since = now - timedelta(days=PEAK_WINDOW_DAYS)
    prefix = group.server_name_prefix if not group.is_aws else ""
    peak_percent = queries.peak_summed_server_cpu_percent(prefix, since, now)
    return None if peak_percent is None else peak_percent / 100 * model.server_cores


def max_capacity_too_low(now: datetime, model: LoadModel) -> RiskEntry:
    peaks = group_peaks(now, model)
    low = [peak for peak in peaks if peak.too_low]
    parts = []
    for peak in peaks:
        if peak.peak_demand_cores is None:
            parts.append(f"{peak.group.name}: no CPU figures in the last {PEAK_WINDOW_DAYS} days")
            continue
        at_max = 100 * peak.peak_demand_cores / peak.max_capacity_cores
        parts.append(
            f"{peak.group.name}: last week's peak {peak.peak_demand_cores:.1f} cores would run its "
            f"maximum of {peak.group.max_capacity} servers ({peak.max_capacity_cores} cores) at "
            f"{at_max:.0f} % CPU, target {peak.target_cpu_percent:.0f} %"
        )
    evidence = ("; ".join(parts) + ".") if parts else "No scaling group."
    return _entry(
        "max-capacity-too-low",
        "A group's maximum too low for last week's peak",
        bool(low),
        evidence,
        "Raise the group's maximum capacity (admin), or lower the partners' limits.",
        "fleet:groups",
        "Fleet",
    )
