"""The fleet page: scaling groups, their instances, scaling by hand, and the automatic policy."""

import uuid

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.audit import RefusedChange
from core.roles import ops_or_engineer_required, ops_required
from fleet import aws_policy, scaling
from fleet import policy as scaling_policy
from fleet.backends import backend_for
from fleet.forms import ScaleForm, policy_form_for
from fleet.models import ScalingGroup, ScalingPolicy
from monitoring.aws import AwsError

HISTORY_ROWS = 10
DECISION_ROWS = 5


def _policy_of(group: ScalingGroup) -> ScalingPolicy:
    try:
        return group.policy
    except ScalingPolicy.DoesNotExist:
        return ScalingPolicy(group=group)


def _describe(group: ScalingGroup):
    """(state, error message): the page renders even when AWS does not answer."""
    try:
        return backend_for(group).describe(group), ""
    except AwsError as error:
        return None, str(error)


def _aws_policy_state(group: ScalingGroup):
    """(AWS's policies and activities, error message) for an AWS group; (None, "") otherwise."""
    if not group.is_aws:
        return None, ""
    try:
        return aws_policy.read_state(group), ""
    except AwsError as error:
        return None, f"AWS's scaling policies of {group.aws_group_name} could not be read: {error}"


@require_GET
@ops_or_engineer_required
def fleet(request: HttpRequest) -> HttpResponse:
    panels = []
    for group in ScalingGroup.objects.all():
        state, error = _describe(group)
        policy = _policy_of(group)
        in_aws, in_aws_error = _aws_policy_state(group)
        panels.append(
            {
                "group": group,
                "state": state,
                "error": error,
                "policy": policy,
                "policy_form": policy_form_for(group, instance=policy),
                "in_aws": in_aws,
                "in_aws_error": in_aws_error,
                "in_aws_in_step": in_aws.in_step_with(policy) if in_aws else None,
                "wanted_in_aws": aws_policy.wanted_summary(policy),
                "actions": group.actions.select_related("requested_by")[:HISTORY_ROWS],
                "decisions": group.decisions.all()[:DECISION_ROWS],
            }
        )
    return render(request, "fleet/fleet.html", {"panels": panels})


@require_http_methods(["GET", "POST"])
@ops_required
def scale(request: HttpRequest, name: str) -> HttpResponse:
    group = get_object_or_404(ScalingGroup, name=name)
    if request.method == "POST":
        form = ScaleForm(request.POST, group=group)
        if form.is_valid():
            return _request_scaling(request, group, form.cleaned_data)
        return render(request, "fleet/scaling_confirm.html", {"group": group, "form": form}, status=400)
    state, error = _describe(group)
    if error:
        messages.error(request, f"{group.name} cannot be scaled now: {error}")
        return redirect("fleet:groups")
    to_capacity = request.GET.get("to", "")
    pending = scaling.pending_action(group)
    # A scaling still on its way counts: "+1" right after a scale to 3 means 3 → 4, not 3 → 3.
    from_capacity = pending.to_capacity if pending else state.desired
    form = ScaleForm(
        initial={"from_capacity": from_capacity, "to_capacity": to_capacity, "idempotency_key": uuid.uuid4()},
        group=group,
    )
    # isdigit() alone lets "²" through, which int() refuses.
    is_number = to_capacity.isascii() and to_capacity.isdigit()
    problem = group.bounds_problem(int(to_capacity)) if is_number else "Choose a capacity."
    if is_number and not problem and int(to_capacity) == from_capacity:
        problem = f"{group.name} is {'already scaling' if pending else 'already'} at {from_capacity}."
    context = {
        "group": group,
        "form": form,
        "from_capacity": from_capacity,
        "to_capacity": to_capacity,
        "problem": problem,
        "pending": pending,
        "cooldown_ends_at": group.cooldown_ends_at() if group.in_cooldown() else None,
    }
    return render(request, "fleet/scaling_confirm.html", context, status=400 if problem else 200)


def _request_scaling(request: HttpRequest, group: ScalingGroup, data: dict) -> HttpResponse:
    action, created = scaling.request_scaling(
        group, request.user, data["from_capacity"], data["to_capacity"], data["reason"], data["idempotency_key"]
    )
    if created:
        if not scaling.enqueue(action):
            messages.warning(
                request,
                f"Scaling {group.name} to {action.to_capacity} is saved, but the task "
                "queue is unreachable; it will start when the queue is back.",
            )
            return redirect("fleet:groups")
        action.refresh_from_db()
        say_outcome(request, action)
    else:
        messages.info(request, f"This scaling of {group.name} was already requested; it was not repeated.")
    return redirect("fleet:groups")


def say_outcome(request: HttpRequest, action) -> None:
    """The outcome as far as it is known: a refusal or failure in red, a request still with the
    worker as information (the fleet page follows it as the worker decides), never a green
    "requested" that may yet be refused."""
    text = f"Scaling {action.group.name} from {action.from_capacity} to {action.to_capacity}"
    if action.status == action.Status.SUCCEEDED:
        messages.success(request, f"{text}: done.")
    elif action.status in (action.Status.REFUSED, action.Status.FAILED):
        messages.error(request, f"{text}: {action.get_status_display().lower()}. {action.message}")
    else:
        messages.info(
            request, f"{text}: requested; the worker decides in a few seconds and this page shows the outcome."
        )


@require_POST
@ops_required
def policy(request: HttpRequest, name: str) -> HttpResponse:
    group = get_object_or_404(ScalingGroup, name=name)
    form = policy_form_for(group, request.POST, instance=_policy_of(group))
    if not form.is_valid():
        messages.error(
            request,
            "Policy not saved: " + "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()),
        )
        return redirect("fleet:groups")
    try:
        scaling_policy.save_policy(form.instance, request.user, form.cleaned_data["reason"])
    except (AwsError, RefusedChange) as error:
        messages.error(request, f"Policy of {group.name} not saved: {error}")
        return redirect("fleet:groups")
    where = " (AWS target tracking)" if group.is_aws else ""
    messages.success(request, f"Policy of {group.name} saved: {'on' if form.instance.enabled else 'off'}{where}.")
    return redirect("fleet:groups")
