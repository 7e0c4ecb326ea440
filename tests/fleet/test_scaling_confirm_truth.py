"""The scaling confirmation tells the truth: a cooldown is said before confirming, a scaling
still on its way is the starting point, and a request is never shown as a green success
before the worker decided."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from fleet import scaling
from fleet.models import ScalingAction
from tests.factories import make_local_group, scale_post

pytestmark = pytest.mark.django_db


def test_the_confirmation_warns_of_the_cooldown(client, ops_user):
    group = make_local_group("sim-fleet", desired=2, cooldown_seconds=300)
    group.last_scaled_at = timezone.now() - timedelta(seconds=60)
    group.save()
    client.force_login(ops_user)
    page = client.get("/fleet/sim-fleet/scale/?to=3").content.decode()
    assert "is in its cooldown until" in page and "the worker will refuse this scaling" in page


def test_plus_one_right_after_a_scale_starts_from_the_pending_target(client, ops_user):
    group = make_local_group("sim-fleet", desired=2, cooldown_seconds=0)
    scaling.request_scaling(group, ops_user, 2, 3, "backlog", uuid.uuid4())
    client.force_login(ops_user)
    same = client.get("/fleet/sim-fleet/scale/?to=3")
    assert same.status_code == 400 and "already scaling at 3" in same.content.decode()
    page = client.get("/fleet/sim-fleet/scale/?to=4").content.decode()
    assert 'Desired capacity <span class="big">3 → <strong>4</strong>' in page
    assert "Scaling to 3" in page and "is still requested" in page


def test_a_request_the_worker_has_not_decided_is_information_not_success(client, ops_user, monkeypatch):
    make_local_group("sim-fleet", desired=2, cooldown_seconds=0)
    monkeypatch.setattr(scaling, "enqueue", lambda action: True)  # queued, not run yet
    client.force_login(ops_user)
    answer = client.post("/fleet/sim-fleet/scale/", scale_post(to_capacity=3, from_capacity=2), follow=True)
    page = answer.content.decode()
    assert 'class="message info"' in page and "the worker decides" in page
    assert 'class="message success"' not in page
    assert ScalingAction.objects.get().status == ScalingAction.Status.REQUESTED


def test_a_refusal_the_worker_decided_at_once_is_shown_in_red(client, ops_user, monkeypatch):
    make_local_group("sim-fleet", desired=2, cooldown_seconds=0)

    def refuse(action):
        ScalingAction.objects.filter(id=action.id).update(status=ScalingAction.Status.REFUSED, message="In cooldown.")
        return True

    monkeypatch.setattr(scaling, "enqueue", refuse)
    client.force_login(ops_user)
    page = client.post("/fleet/sim-fleet/scale/", scale_post(to_capacity=3, from_capacity=2), follow=True)
    assert 'class="message error"' in page.content.decode() and "refused. In cooldown." in page.content.decode()
