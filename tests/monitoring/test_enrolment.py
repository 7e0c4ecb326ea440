"""Hosts that enrol themselves: the fleet enrolment secret (ops only, hashed, audited), the
enrolment and deregistration API, and what the servers page shows."""

import json
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEntry
from monitoring import enrolment, servers, tasks
from monitoring.models import EnrolmentFailure, EnrolmentSecret, ServerAudit, UploadServer, hash_token
from tests.factories import postgres_only, report_body

pytestmark = pytest.mark.django_db


@pytest.fixture
def secret(ops_user):
    return enrolment.rotate_secret(ops_user, "first fleet")


def enrol(client, secret, body=None, **headers):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if secret is not None else {}
    payload = json.dumps(body if body is not None else {"host_id": "i-0abc", "name": "upload-a"})
    return client.post(reverse("monitoring:enrol"), payload, content_type="application/json", **auth, **headers)


def report(client, token, server_id, sequence=1, boot_id="boot-a"):
    return client.post(
        reverse("monitoring:reports"),
        json.dumps(report_body(server_id, sequence, boot_id=boot_id)),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def deregister(client, token, body=b""):
    return client.post(
        reverse("monitoring:deregister"), body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )


# ---- the secret --------------------------------------------------------------------------


def test_ops_create_the_secret_on_the_servers_page_and_see_it_once(login, ops_user):
    response = login(ops_user).post(reverse("monitoring:enrolment-secret"), {"secret-reason": "autoscaling"})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    secret = response.context["secret"]
    stored = EnrolmentSecret.objects.get()
    assert stored.secret_hash == hash_token(secret) and secret not in stored.secret_hash
    entry = AuditEntry.objects.first()
    assert (entry.action, entry.actor, entry.reason) == (ServerAudit.ENROLMENT_SECRET_CREATED, ops_user, "autoscaling")
    page = login(ops_user).get(reverse("monitoring:servers")).content.decode()
    assert secret not in page and stored.secret_prefix in page


def test_the_secret_needs_a_reason(login, ops_user):
    response = login(ops_user).post(reverse("monitoring:enrolment-secret"), {"secret-reason": ""})
    assert response.status_code == 400 and "Say why" in response.content.decode()
    assert not EnrolmentSecret.objects.exists()


@pytest.mark.parametrize("user_fixture,status", [("engineer", 403), ("manager_a", 403)])
def test_only_ops_create_or_rotate_the_secret(request, login, user_fixture, status):
    client = login(request.getfixturevalue(user_fixture))
    assert client.post(reverse("monitoring:enrolment-secret"), {"secret-reason": "x"}).status_code == status
    assert not EnrolmentSecret.objects.exists() and not AuditEntry.objects.exists()


def test_a_stranger_is_sent_to_the_login_page(client):
    response = client.post(reverse("monitoring:enrolment-secret"), {"secret-reason": "x"})
    assert response.status_code == 302 and "/login" in response["Location"]
    assert not EnrolmentSecret.objects.exists()


def test_engineers_see_the_secrets_prefix_but_no_rotate_button(login, engineer, secret):
    page = login(engineer).get(reverse("monitoring:servers")).content.decode()
    assert EnrolmentSecret.objects.get().secret_prefix in page and "Rotate and show" not in page


def test_a_rotated_secret_stops_at_once_and_hosts_enrolled_keep_their_tokens(client, login, ops_user, secret):
    token = enrol(client, secret).json()["token"]
    response = login(ops_user).post(
        reverse("monitoring:enrolment-secret"), {"secret-reason": "leaked", "secret-previous_valid_seconds": "0"}
    )
    new_secret = response.context["secret"]
    assert AuditEntry.objects.first().action == ServerAudit.ENROLMENT_SECRET_ROTATED
    assert enrol(client, secret, {"host_id": "i-0new"}).status_code == 401
    assert enrol(client, new_secret, {"host_id": "i-0new"}).status_code == 201
    assert report(client, token, "upload-a").status_code == 202


def test_a_rotated_secret_can_stay_valid_for_a_while(client, ops_user, secret):
    new_secret = enrolment.rotate_secret(ops_user, "yearly", previous_valid_seconds=3600)
    assert enrol(client, secret, {"host_id": "i-0old"}).status_code == 201
    assert enrol(client, new_secret, {"host_id": "i-0new"}).status_code == 201
    later = timezone.now() + timedelta(hours=2)
    assert not enrolment.secret_is_valid(secret, later) and enrolment.secret_is_valid(new_secret, later)


# ---- enrolling ---------------------------------------------------------------------------


def test_a_host_enrols_with_the_secret_and_reports_with_its_own_token(client, secret):
    response = enrol(client, secret, {"host_id": "i-0abc", "instance_id": "i-0abc", "name": "upload-a"})
    assert response.status_code == 201 and response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["server_id"] == "upload-a" and body["created"] is True and body["token"].startswith("uos_")
    server = UploadServer.objects.get()
    assert (server.host_id, server.instance_id, server.token_hash) == ("i-0abc", "i-0abc", hash_token(body["token"]))
    entry = AuditEntry.objects.first()
    assert entry.action == ServerAudit.SERVER_ENROLLED and entry.actor_name == "system"
    assert entry.after["host_id"] == "i-0abc" and body["token"] not in json.dumps(entry.after)
    assert report(client, body["token"], "upload-a").status_code == 202
    assert UploadServer.live_count() == 1


def test_the_name_defaults_to_the_host_id(client, secret):
    assert enrol(client, secret, {"host_id": "upload-7.internal"}).json()["server_id"] == "upload-7.internal"


def test_enrolling_the_same_host_again_replaces_its_token_in_its_one_entry(client, secret):
    first = enrol(client, secret).json()
    again = enrol(client, secret)
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["server_id"] == first["server_id"] and UploadServer.objects.count() == 1
    assert report(client, first["token"], "upload-a").status_code == 401
    assert report(client, again.json()["token"], "upload-a").status_code == 202


def test_a_host_with_many_worker_processes_counts_once(client, secret):
    token = enrol(client, secret).json()["token"]
    for worker in range(4):  # four gates on one host, each with its own boot id
        assert report(client, token, "upload-a", sequence=1, boot_id=f"worker-{worker}").status_code == 202
    assert UploadServer.live_count() == 1 and UploadServer.objects.count() == 1


@pytest.mark.parametrize(
    "body,field",
    [
        ({}, "host_id"),
        ({"host_id": ""}, "host_id"),
        ({"host_id": "bad host"}, "host_id"),
        ({"host_id": 7}, "host_id"),
        ({"host_id": "i-0abc", "name": "no spaces"}, "name"),
        ({"host_id": "arn:aws:thing"}, "name"),  # a valid host id, but not a valid server name
        ({"host_id": "i-0abc", "instance_id": ["i-1"]}, "instance_id"),
        ({"host_id": "i-0abc", "token": "x"}, "token"),
        ({"host_id": "i-0abc\n"}, "host_id"),
    ],
)
def test_bad_enrolments_get_400_naming_the_field(client, secret, body, field):
    response = enrol(client, secret, body)
    assert response.status_code == 400 and field in response.json()["fields"]
    assert not UploadServer.objects.exists()


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b"\xff\xfe", b"[" * 100000])
def test_a_body_that_is_not_a_json_object_gets_400(client, secret, payload):
    response = client.post(
        reverse("monitoring:enrol"), payload, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}"
    )
    assert response.status_code in (400, 413) and "error" in response.json()


def test_wrong_content_type_and_huge_bodies_are_refused(client, secret):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    assert client.post(reverse("monitoring:enrol"), "host_id=x", content_type="text/plain", **auth).status_code == 415
    huge = json.dumps({"host_id": "i-0abc", "name": "x" * 10000})
    assert client.post(reverse("monitoring:enrol"), huge, content_type="application/json", **auth).status_code == 413


def test_only_post(client, secret):
    assert client.get(reverse("monitoring:enrol")).status_code == 405


def test_a_name_that_belongs_to_another_server_is_a_conflict(client, ops_user, secret):
    servers.register_server(ops_user, "upload-a", "fixed box")
    response = enrol(client, secret, {"host_id": "i-0abc", "name": "upload-a"})
    assert response.status_code == 409 and "belongs to another server" in response.json()["error"]
    assert UploadServer.objects.count() == 1


def test_a_host_whose_server_ops_revoked_cannot_enrol_itself_back(client, ops_user, secret):
    enrol(client, secret)
    servers.revoke_server(UploadServer.objects.get(), ops_user, "compromised")
    response = enrol(client, secret)
    assert response.status_code == 403 and "revoked" in response.json()["error"]
    assert UploadServer.objects.get().revoked_at is not None


def test_without_a_secret_enrolment_is_off(client):
    response = enrol(client, "anything")
    assert response.status_code == 403 and "enrolment is off" in response.json()["error"]


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic abc", "Bearer "])
def test_a_missing_or_wrong_secret_gets_401_and_enrols_nothing(client, secret, authorization):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = enrol(client, None, **headers)
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
    assert not UploadServer.objects.exists()


def test_wrong_secrets_from_one_address_make_it_wait(client, secret, settings):
    settings.ENROLMENT_FAILURE_LIMIT = 3
    for _ in range(3):
        assert enrol(client, "wrong", REMOTE_ADDR="203.0.113.9").status_code == 401
    throttled = enrol(client, secret, REMOTE_ADDR="203.0.113.9")
    assert throttled.status_code == 429 and 0 < int(throttled["Retry-After"]) <= 15 * 60
    assert "wait" in throttled.json()["error"] and not UploadServer.objects.exists()
    assert enrol(client, secret, REMOTE_ADDR="198.51.100.4").status_code == 201  # another address


def test_the_wait_ends_when_the_failures_leave_the_window(secret, settings):
    settings.ENROLMENT_FAILURE_LIMIT = 2
    now = timezone.now()
    enrolment.record_failure("203.0.113.9", now - timedelta(minutes=20))
    enrolment.record_failure("203.0.113.9", now - timedelta(minutes=10))
    assert enrolment.seconds_throttled("203.0.113.9", now) == 0
    enrolment.record_failure("203.0.113.9", now)
    assert 4 * 60 < enrolment.seconds_throttled("203.0.113.9", now) <= 5 * 60 + 1


def test_the_hourly_purge_forgets_wrong_secrets_that_no_longer_count():
    now = timezone.now()
    enrolment.record_failure("203.0.113.9", now - timedelta(minutes=20))
    enrolment.record_failure("198.51.100.4", now)
    assert tasks.purge_expired_metrics()["enrolment_failures"] == 1
    assert list(EnrolmentFailure.objects.values_list("address", flat=True)) == ["198.51.100.4"]


# ---- deregistering -----------------------------------------------------------------------


def test_an_orderly_shutdown_deregisters_the_server_which_is_gone_not_silent(client, secret):
    token = enrol(client, secret).json()["token"]
    report(client, token, "upload-a")
    assert UploadServer.live_count() == 1
    response = deregister(client, token, json.dumps({"reason": "deploy"}))
    assert response.status_code == 200 and response.json() == {"status": "deregistered", "server_id": "upload-a"}
    server = UploadServer.objects.get()
    assert server.gone_at is not None and "orderly shutdown: deploy" in server.gone_reason
    assert UploadServer.live(timezone.now()).count() == 0
    assert AuditEntry.objects.first().action == ServerAudit.SERVER_DEREGISTERED
    assert report(client, token, "upload-a", sequence=2).status_code == 401
    assert deregister(client, token).status_code == 401


def test_a_deregistered_host_enrols_back_into_its_entry(client, secret):
    token = enrol(client, secret).json()["token"]
    deregister(client, token)
    again = enrol(client, secret)
    assert again.status_code == 200 and UploadServer.objects.count() == 1
    server = UploadServer.objects.get()
    assert server.gone_at is None and "it was gone" in AuditEntry.objects.first().reason
    assert report(client, again.json()["token"], "upload-a", sequence=5).status_code == 202


def test_ops_can_give_a_gone_server_a_new_token_by_hand(client, login, ops_user, secret):
    token = enrol(client, secret).json()["token"]
    deregister(client, token)
    prefix = UploadServer.objects.get().token_prefix
    response = login(ops_user).post(
        reverse("monitoring:server-rotate-token", args=["upload-a"]), {"reason": "back", "token_prefix": prefix}
    )
    assert UploadServer.objects.get().gone_at is None
    assert report(client, response.context["token"], "upload-a", sequence=9).status_code == 202


@pytest.mark.parametrize("body", [b"[]", b'{"reason": 5}', b'{"why": "x"}', b"nope", json.dumps({"reason": "a\nb"})])
def test_a_bad_deregistration_gets_400_and_changes_nothing(client, secret, body):
    token = enrol(client, secret).json()["token"]
    response = deregister(client, token, body)
    assert response.status_code == 400 and "reason" in response.json()["fields"]
    assert UploadServer.objects.get().gone_at is None


def test_deregistering_needs_the_servers_own_token(client, secret):
    enrol(client, secret)
    assert deregister(client, secret).status_code == 401  # the fleet secret is not a server's token
    assert UploadServer.objects.get().gone_at is None


# ---- the servers page --------------------------------------------------------------------


def test_the_servers_page_shows_a_gone_server_with_when_and_why(client, login, engineer, secret):
    token = enrol(client, secret, {"host_id": "i-0abc", "instance_id": "i-0abc", "name": "upload-a"}).json()["token"]
    servers.register_server(None, "fixed-1", "by hand")
    deregister(client, token)
    page = login(engineer).get(reverse("monitoring:servers")).content.decode()
    assert "gone</span>" in page and "deregistered by the host at an orderly shutdown" in page
    assert "i-0abc" in page and "registered by hand" in page


# ---- two enrolments of one host at the same moment ---------------------------------------


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_enrolments_of_one_host_at_once_make_one_server(ops_user):
    secret = enrolment.rotate_secret(ops_user, "fleet")
    assert enrolment.secret_is_valid(secret)
    barrier = threading.Barrier(4)
    results, errors = [], []

    def enrol_in_thread():
        try:
            barrier.wait()
            request = enrolment.EnrolmentRequest(host_id="i-0same", name="upload-same")
            results.append(enrolment.enrol_host(request))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=enrol_in_thread) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and len(results) == 4
    assert UploadServer.objects.filter(host_id="i-0same").count() == 1
    assert sum(result.created for result in results) == 1
    # The last enrolment's token is the one that works.
    server = UploadServer.objects.get()
    assert sum(server.token_matches(result.token) for result in results) == 1


# ---- the contract ------------------------------------------------------------------------


def test_the_openapi_file_describes_the_enrolment_as_the_api_answers_it(client, secret):
    spec = json.loads(client.get(reverse("monitoring:openapi")).content)
    request_schema = spec["components"]["schemas"]["Enrolment"]
    assert set(request_schema["properties"]) == set(enrolment.ENROLMENT_FIELDS)
    assert request_schema["required"] == ["host_id"]
    answer = enrol(client, secret).json()
    answer_schema = spec["components"]["schemas"]["Enrolled"]
    assert set(answer) == set(answer_schema["properties"]) and set(answer_schema["required"]) <= set(answer)
    assert {"/api/v1/enrol", "/api/v1/deregister"} <= set(spec["paths"])
    assert answer["report_path"] in spec["paths"] and answer["deregister_path"] in spec["paths"]
