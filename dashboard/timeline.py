"""One timeline of what changed the fleet's load: limit changes, pauses, scaling and alerts.

Events come newest first (like the audit log). Four bounded queries whatever the volume, each
filtered on an indexed time column and cut at `limit`: audit entries, scaling actions, alert
firings and alert recoveries. Scaling requests are also in the audit log; the timeline reads them
from ScalingAction (it has the status and the policy's actions), not twice.

Who sees what, as on the overview: ops and engineers see everything; a partner manager sees the
events of the partners they manage plus fleet-wide ones (pause-all, default limits, scaling, fleet
alerts), never another partner's. Links point only at pages the user may open.
"""

from dataclasses import asdict, dataclass
from datetime import datetime

from django.db.models import Q
from django.urls import reverse

from alerting.models import Alert, AlertAudit, AlertState
from core import roles
from core.models import AuditEntry
from fleet.models import ScalingAction
from monitoring import metrics
from partners.access import visible_partners
from partners.models import PartnerAudit
from partners.templatetags.limits import audit_value, limit_label


class Kind:
    LIMITS = "limits"
    PAUSE = "pause"
    SCALING = "scaling"
    ALERT = "alert"


# One colour per kind, shared by the chart annotations and the list's badges.
KIND_COLORS = {Kind.LIMITS: "#2557d6", Kind.PAUSE: "#b86e00", Kind.SCALING: "#1f8a4c", Kind.ALERT: "#c0322b"}

AUDIT_KINDS = {
    PartnerAudit.LIMITS_CHANGED: Kind.LIMITS,
    PartnerAudit.SHADOW_CHANGED: Kind.LIMITS,
    PartnerAudit.DEFAULTS_CHANGED: Kind.LIMITS,
    PartnerAudit.OVERRIDE_STARTED: Kind.LIMITS,
    PartnerAudit.OVERRIDE_ENDED: Kind.LIMITS,
    PartnerAudit.EFFECTIVE_LIMITS_CHANGED: Kind.LIMITS,
    PartnerAudit.LOAD_CONTROL_CHANGED: Kind.LIMITS,
    PartnerAudit.PARTNER_PAUSED: Kind.PAUSE,
    PartnerAudit.PARTNER_RESUMED: Kind.PAUSE,
    PartnerAudit.ALL_PAUSED: Kind.PAUSE,
    PartnerAudit.ALL_RESUMED: Kind.PAUSE,
    # What people did about an alert; its firing and recovery come from the alert rows.
    AlertAudit.ALERT_ACKNOWLEDGED: Kind.ALERT,
    AlertAudit.ALERT_SILENCED: Kind.ALERT,
}

DEFAULT_LIMIT = 200
DETAIL_MAX_CHARS = 300


@dataclass(frozen=True)
class TimelineEvent:
    at: datetime
    kind: str  # one of Kind
    title: str
    detail: str
    actor: str
    link: str  # "" when the user may not open the object's page

    @property
    def color(self) -> str:
        return KIND_COLORS[self.kind]

    def as_json(self) -> dict:
        return {
            **asdict(self),
            "at": self.at.isoformat(),
            "at_ms": int(self.at.timestamp() * 1000),
            "color": self.color,
        }


def events(since: datetime, until: datetime, limit: int = DEFAULT_LIMIT, user=None) -> list[TimelineEvent]:
    """The `limit` newest events with since <= at <= until, newest first.

    With `user`, only what that user may see, with links they may open; without (a job, an email
    to ops), everything, linked as for ops.
    """
    sees_all = user is None or roles.sees_everything(user)
    merged = [
        *_audit_events(since, until, user, sees_all, limit),
        *_scaling_events(since, until, sees_all, limit),
        *_alert_events(since, until, user, sees_all, limit),
    ]
    merged.sort(key=lambda event: event.at, reverse=True)
    return merged[:limit]


def _shorten(text: str) -> str:
    return text if len(text) <= DETAIL_MAX_CHARS else text[: DETAIL_MAX_CHARS - 1] + "…"


# Audit entries: limit changes, overrides, load-coupled changes, pauses.


def _audit_events(since, until, user, sees_all: bool, limit: int) -> list[TimelineEvent]:
    entries = AuditEntry.objects.filter(
        created_at__gte=since, created_at__lte=until, action__in=list(AUDIT_KINDS)
    ).prefetch_related("target")
    if not sees_all:
        entries = entries.filter(Q(target_id=None) | Q(partner__in=visible_partners(user)))
    controls_url = reverse("partners:controls") if user is None or roles.is_ops(user) else ""
    return [_audit_event(entry, controls_url) for entry in entries.order_by("-created_at", "-id")[:limit]]


def _audit_event(entry: AuditEntry, controls_url: str) -> TimelineEvent:
    kind = AUDIT_KINDS[entry.action]
    # A pause's title says what happened; its reason is the useful part. A limit change shows its values.
    changes = (
        ""
        if kind == Kind.PAUSE
        else "; ".join(
            f"{limit_label(name)}: {audit_value(before, name)} → {audit_value(after, name)}"
            for name, before, after in entry.changes()
        )
    )
    detail = " — ".join(part for part in (changes, entry.reason) if part)
    link = entry.target.get_absolute_url() if entry.target is not None else controls_url
    return TimelineEvent(
        at=entry.created_at,
        kind=kind,
        title=f"{entry.action_label}: {entry.subject}",
        detail=_shorten(detail),
        actor=entry.actor_name,
        link=link,
    )


# Scaling actions, by hand and by the automatic policy.


def _scaling_events(since, until, sees_all: bool, limit: int) -> list[TimelineEvent]:
    actions = (
        ScalingAction.objects.filter(requested_at__gte=since, requested_at__lte=until)
        .select_related("group")
        .order_by("-requested_at", "-id")[:limit]
    )
    fleet_url = reverse("fleet:groups") if sees_all else ""
    return [_scaling_event(action, fleet_url) for action in actions]


def _scaling_event(action: ScalingAction, fleet_url: str) -> TimelineEvent:
    verb = "Scale out" if action.to_capacity > action.from_capacity else "Scale in"
    detail = f"{action.get_status_display()}. {action.reason}" + (f" ({action.message})" if action.message else "")
    return TimelineEvent(
        at=action.requested_at,
        kind=Kind.SCALING,
        title=f"{verb} {action.group.name}: {action.from_capacity} → {action.to_capacity}",
        detail=_shorten(detail),
        actor=action.requested_by_name,
        link=fleet_url,
    )


# Alerts: when one fired and when it recovered (pending alerts that never fired are left out).


def _alert_events(since, until, user, sees_all: bool, limit: int) -> list[TimelineEvent]:
    alerts = Alert.objects.select_related("rule")
    if not sees_all:
        alerts = alerts.filter(_fleet_or_own_subject(user))
    alerts_url = reverse("alerting:alerts") if sees_all else ""
    fired = alerts.filter(fired_at__gte=since, fired_at__lte=until).order_by("-fired_at", "-id")[:limit]
    recovered = alerts.filter(state=AlertState.RESOLVED, closed_at__gte=since, closed_at__lte=until).order_by(
        "-closed_at", "-id"
    )[:limit]
    return [
        *(_alert_event(alert, alert.fired_at, "firing", alerts_url) for alert in fired),
        *(_alert_event(alert, alert.closed_at, "resolved", alerts_url) for alert in recovered),
    ]


def _fleet_or_own_subject(user) -> Q:
    """Alerts a manager may see: any not about a partner, and those about their own partners."""
    own = [
        metrics.client_subject(client_id) for client_id in visible_partners(user).values_list("client_id", flat=True)
    ]
    return ~Q(subject__startswith=metrics.client_subject("")) | Q(subject__in=own)


def _alert_event(alert: Alert, at: datetime, state: str, alerts_url: str) -> TimelineEvent:
    # The row keeps only its latest value: the value at recovery, but not the one it fired with.
    value = f"value {alert.value:g}; " if state == "resolved" and alert.value is not None else ""
    detail = f"{alert.rule.get_severity_display()}: {value}{alert.rule.condition_text()}"
    return TimelineEvent(
        at=at,
        kind=Kind.ALERT,
        title=f"{alert.rule.name} {state} [{alert.subject}]",
        detail=_shorten(detail),
        actor="alerting",
        link=alerts_url,
    )
