"""Servers a scale-in terminated (the local simulated fleet, or AWS through moto) are marked gone
with when and why, and the "server silent" rule pages nobody for them; a server that is merely
silent still pages."""

from datetime import timedelta

import boto3
import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from moto import mock_aws

from alerting import evaluation
from alerting.models import Alert
from core.models import AuditEntry
from fleet import membership
from monitoring import enrolment, servers
from monitoring.models import ServerAudit, UploadServer
from tests.factories import AMI_ID, REGION, make_aws_group, make_local_group, report_seen, scale

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def recipients(engineer):
    return engineer  # the silent rule mails engineers


def make_enrolled(name, seen_at, scaling_group="", instance_id="", enrolled_at=None) -> UploadServer:
    request = enrolment.EnrolmentRequest(host_id=name, name=name, instance_id=instance_id, scaling_group=scaling_group)
    server = enrolment.enrol_host(request, now=enrolled_at or seen_at - timedelta(minutes=10)).server
    report_seen(server, seen_at)
    return server


def silent_alerts() -> list[str]:
    return list(Alert.objects.filter(rule__slug="server-silent").values_list("subject", flat=True))


# ---- the local backend ---------------------------------------------------------------------


def test_a_server_a_local_scale_in_stopped_is_gone_and_pages_nobody(ops_user, login):
    now = timezone.now()
    group = make_local_group("sim-fleet", desired=3)
    a, b, c = (make_enrolled(name, now, scaling_group="sim-fleet") for name in ("sim-1", "sim-2", "sim-3"))
    assert scale(group, ops_user, 2).status == "succeeded"
    later = now + timedelta(seconds=40)
    report_seen(a, later)
    report_seen(b, later)  # sim-3 was drained and stopped: no more reports
    evaluation.run(later + timedelta(seconds=1))
    c.refresh_from_db()
    assert c.gone_at is not None and "local group sim-fleet runs 2 servers" in c.gone_reason
    assert "after the scale-in 3 → 2 by olivia-ops" in c.gone_reason
    assert AuditEntry.objects.filter(action=ServerAudit.SERVER_GONE, subject="server sim-3").exists()
    assert silent_alerts() == [] and mail.outbox == []
    page = login(ops_user).get(reverse("monitoring:servers")).content.decode()
    assert "gone</span>" in page and "after the scale-in 3 → 2" in page


def test_a_silent_server_of_a_group_short_of_servers_still_pages(ops_user):
    now = timezone.now()
    make_local_group("sim-fleet", desired=3)
    a, b, c = (make_enrolled(name, now, scaling_group="sim-fleet") for name in ("sim-1", "sim-2", "sim-3"))
    later = now + timedelta(seconds=40)
    report_seen(a, later)
    report_seen(b, later)  # sim-3 crashed while the group wants 3
    evaluation.run(later + timedelta(seconds=1))
    c.refresh_from_db()
    assert c.gone_at is None and silent_alerts() == ["server:sim-3"]
    assert len(mail.outbox) == 1 and "silent" in mail.outbox[0].subject.lower()


def test_servers_registered_by_hand_or_outside_the_group_are_never_marked_gone(ops_user):
    now = timezone.now()
    make_local_group("sim-fleet", desired=1)
    make_enrolled("sim-1", now, scaling_group="sim-fleet")
    fixed, _ = servers.register_server(ops_user, "sim-fixed", "a fixed box")
    report_seen(fixed, now)
    elsewhere = make_enrolled("other-1", now)
    assert membership.mark_terminated_servers_gone(now + timedelta(seconds=40)) == []
    fixed.refresh_from_db()
    elsewhere.refresh_from_db()
    assert fixed.gone_at is None and elsewhere.gone_at is None


def test_a_host_that_has_just_enrolled_is_not_taken_for_a_stopped_one():
    now = timezone.now()
    make_local_group("sim-fleet", desired=1)
    make_enrolled("sim-1", now, scaling_group="sim-fleet")
    enrolment.enrol_host(enrolment.EnrolmentRequest("sim-2", "sim-2", scaling_group="sim-fleet"), now=now)
    assert membership.mark_terminated_servers_gone(now + timedelta(seconds=5)) == []


# ---- AWS Auto Scaling groups (moto) --------------------------------------------------------


@pytest.fixture
def mocked_aws(fake_aws_environment, settings):
    settings.AWS_MAX_ATTEMPTS = 1
    with mock_aws():
        yield


def make_asg(name: str, desired: int) -> list[str]:
    """An Auto Scaling group in moto; its instance ids."""
    boto3.client("ec2", region_name=REGION).create_launch_template(
        LaunchTemplateName=f"{name}-lt", LaunchTemplateData={"ImageId": AMI_ID, "InstanceType": "t3.micro"}
    )
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": f"{name}-lt", "Version": "$Latest"},
        MinSize=0,
        MaxSize=10,
        DesiredCapacity=desired,
        AvailabilityZones=[f"{REGION}a"],
    )
    return asg_instances(name)


def asg_instances(name: str) -> list[str]:
    described = boto3.client("autoscaling", region_name=REGION).describe_auto_scaling_groups(
        AutoScalingGroupNames=[name]
    )
    return [instance["InstanceId"] for instance in described["AutoScalingGroups"][0]["Instances"]]


def test_servers_an_aws_scale_in_terminated_are_gone_and_page_nobody(mocked_aws, ops_user):
    now = timezone.now()
    instances = make_asg("upload-servers", desired=3)
    group = make_aws_group("upload-servers")
    # The hosts do not name their group: the fleet learns it from the group's instance list.
    hosts = {iid: make_enrolled(f"upload-{i}", now, instance_id=iid) for i, iid in enumerate(instances)}
    membership.mark_terminated_servers_gone(now)
    assert set(UploadServer.objects.values_list("scaling_group", flat=True)) == {"aws-uploads"}
    assert scale(group, ops_user, 1).status == "succeeded"
    survivors = asg_instances("upload-servers")
    assert len(survivors) == 1
    later = now + timedelta(seconds=40)
    report_seen(hosts[survivors[0]], later)
    evaluation.run(later + timedelta(seconds=1))
    gone = UploadServer.objects.exclude(gone_at=None)
    assert {s.instance_id for s in gone} == set(instances) - set(survivors)
    assert all("no longer in Auto Scaling group upload-servers" in s.gone_reason for s in gone)
    assert all("after the scale-in 3 → 1" in s.gone_reason for s in gone)
    assert silent_alerts() == [] and mail.outbox == []


def test_a_silent_aws_instance_still_in_service_pages(mocked_aws):
    now = timezone.now()
    (instance,) = make_asg("upload-servers", desired=1)
    make_aws_group("upload-servers")
    server = make_enrolled("upload-0", now, instance_id=instance, scaling_group="upload-servers")
    evaluation.run(now + timedelta(seconds=40))
    server.refresh_from_db()
    assert server.gone_at is None and silent_alerts() == ["server:upload-0"] and len(mail.outbox) == 1


def test_an_aws_failure_leaves_servers_as_they_were_and_the_rule_still_runs(fake_aws_environment, settings):
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens: connection refused
    settings.AWS_MAX_ATTEMPTS = 1
    now = timezone.now()
    make_aws_group("upload-servers")
    server = make_enrolled("upload-0", now, instance_id="i-0dead", scaling_group="upload-servers")
    evaluation.run(now + timedelta(seconds=40))
    server.refresh_from_db()
    assert server.gone_at is None and silent_alerts() == ["server:upload-0"]
