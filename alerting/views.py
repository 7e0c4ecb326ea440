"""The alerts page: open alerts, history, rules, silences. Ops and engineers read it; only
ops edit rules and silences; engineers (and ops) acknowledge."""

from datetime import timedelta

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from alerting import actions, evaluation
from alerting.forms import AlertRuleForm, ExpireSilenceForm, SilenceForm
from alerting.models import OPEN_STATES, Alert, AlertRule, AlertState, Silence
from alerting.rules import save_rule
from core import roles
from core.roles import ops_or_engineer_required, ops_required

HISTORY_ROWS = 50


@require_GET
@ops_or_engineer_required
def alerts(request: HttpRequest) -> HttpResponse:
    return _page(request, SilenceForm(initial=_silence_prefill(request)))


def _silence_prefill(request: HttpRequest) -> dict:
    """ "Silence…" on an alert row opens the form filled in for that rule and subject."""
    alert_id = request.GET.get("silence", "")
    alert = Alert.objects.filter(id=alert_id).select_related("rule").first() if alert_id.isdigit() else None
    if alert is None:
        return {}
    return {"rule": alert.rule, "subject": alert.subject, "comment": f"Working on {alert.rule.name} ({alert.subject})"}


def _page(request, silence_form, status=200) -> HttpResponse:
    now = timezone.now()
    alerts_shown = Alert.objects.select_related("rule", "acknowledged_by")
    open_alerts = sorted(alerts_shown.filter(state__in=OPEN_STATES), key=Alert.urgency)
    return render(
        request,
        "alerting/alerts.html",
        {
            "now": now,
            "open_alerts": open_alerts,
            "held_back_causes": evaluation.held_back_causes([a for a in open_alerts if a.state == AlertState.FIRING]),
            "history": alerts_shown.filter(state=AlertState.RESOLVED).order_by("-closed_at")[:HISTORY_ROWS],
            "rules": AlertRule.objects.all(),
            "silences": Silence.objects.select_related("rule", "created_by").filter(
                expires_at__gt=now - timedelta(days=7)
            ),
            "silence_form": silence_form,
            "may_acknowledge": roles.sees_everything(request.user),
            "highlight": request.GET.get("alert", ""),
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
@ops_required
def rule_edit(request: HttpRequest, rule_id: int | None = None) -> HttpResponse:
    rule = get_object_or_404(AlertRule, id=rule_id) if rule_id else AlertRule()
    form = AlertRuleForm(request.POST or None, instance=rule)
    if request.method == "POST" and form.is_valid():
        if save_rule(form.instance, request.user, form.cleaned_data["reason"]):
            messages.success(request, f"Rule “{form.instance.name}” saved.")
        return redirect("alerting:alerts")
    return render(request, "alerting/rule_form.html", {"form": form, "rule": rule}, status=400 if form.errors else 200)


@require_POST
@ops_required
def silence_create(request: HttpRequest) -> HttpResponse:
    form = SilenceForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    data = form.cleaned_data
    silence = actions.create_silence(
        request.user,
        data["rule"],
        data["subject"].strip(),
        data["comment"],
        timedelta(minutes=data["duration_minutes"]),
    )
    messages.success(request, f"Silenced until {silence.expires_at:%Y-%m-%d %H:%M} UTC.")
    return redirect("alerting:alerts")


@require_POST
@ops_required
def silence_expire(request: HttpRequest, silence_id: int) -> HttpResponse:
    silence = get_object_or_404(Silence, id=silence_id)
    form = ExpireSilenceForm(request.POST)
    form.is_valid()
    if actions.expire_silence(request.user, silence, form.cleaned_data.get("reason", "")):
        messages.success(request, "Silence expired: emails resume.")
    return redirect("alerting:alerts")


@require_POST
@ops_or_engineer_required
def alert_acknowledge(request: HttpRequest, alert_id: int) -> HttpResponse:
    alert = get_object_or_404(Alert.objects.select_related("rule"), id=alert_id)
    if actions.acknowledge(request.user, alert):
        messages.success(request, f"Acknowledged: no more reminders for {alert.rule.name}.")
    elif alert.state != AlertState.FIRING:
        messages.error(
            request, f"{alert.rule.name} is {alert.get_state_display().lower()}: only a firing alert is acknowledged."
        )
    return redirect("alerting:alerts")
