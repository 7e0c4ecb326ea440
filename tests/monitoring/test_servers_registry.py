"""The upload-server registry: who may see it and register, rotate or revoke servers."""

import pytest
from django.urls import reverse

from core.models import AuditEntry
from monitoring import servers
from monitoring.models import ServerAudit, UploadServer, hash_token


@pytest.mark.parametrize("role,status", [("ops", 200), ("engineer", 200), ("manager_a", 403), (None, 302)])
def test_who_sees_the_server_list(login, ops_user, engineer, manager_a, role, status):
    user = {"ops": ops_user, "engineer": engineer, "manager_a": manager_a, None: None}[role]
    assert login(user).get(reverse("monitoring:servers")).status_code == status


def test_ops_register_a_server_and_see_its_token_once(login, ops_user):
    response = login(ops_user).post(reverse("monitoring:server-register"), {"name": "upload-7", "reason": "new box"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    token = response.context["token"]
    server = UploadServer.objects.get(name="upload-7")
    assert server.token_hash == hash_token(token) and token not in server.token_hash
    assert AuditEntry.objects.first().action == ServerAudit.SERVER_REGISTERED
    listing = login(ops_user).get(reverse("monitoring:servers")).content.decode()
    assert token not in listing and server.token_prefix in listing


@pytest.mark.parametrize(
    "data,message",
    [
        ({"name": "bad name!", "reason": "x"}, "Use letters"),
        ({"name": "upload-1", "reason": ""}, "Say why"),
    ],
)
def test_a_bad_registration_gets_a_field_error(login, ops_user, data, message):
    servers.register_server(ops_user, "upload-1", "first")
    response = login(ops_user).post(reverse("monitoring:server-register"), data)
    assert response.status_code == 400 and message in response.content.decode()
    assert UploadServer.objects.count() == 1


def test_a_duplicate_name_is_refused(login, ops_user):
    servers.register_server(ops_user, "upload-1", "first")
    response = login(ops_user).post(reverse("monitoring:server-register"), {"name": "upload-1", "reason": "x"})
    assert response.status_code == 400 and "registered already" in response.content.decode()


@pytest.mark.parametrize("user_fixture", ["engineer", "manager_a"])
def test_only_ops_register_rotate_or_revoke(request, login, ops_user, user_fixture):
    server, _ = servers.register_server(ops_user, "upload-1", "first")
    client = login(request.getfixturevalue(user_fixture))
    assert client.post(reverse("monitoring:server-register"), {"name": "u2", "reason": "x"}).status_code == 403
    assert client.post(reverse("monitoring:server-rotate-token", args=["upload-1"]), {"reason": "x"}).status_code == 403
    assert client.post(reverse("monitoring:server-revoke", args=["upload-1"]), {"reason": "x"}).status_code == 403
    server.refresh_from_db()
    assert server.revoked_at is None and UploadServer.objects.count() == 1


def test_ops_revoke_a_server_with_a_reason(login, ops_user):
    servers.register_server(ops_user, "upload-1", "first")
    client = login(ops_user)
    client.post(reverse("monitoring:server-revoke", args=["upload-1"]), {"reason": ""})
    assert UploadServer.objects.get().revoked_at is None
    client.post(reverse("monitoring:server-revoke", args=["upload-1"]), {"reason": "retired"})
    assert UploadServer.objects.get().revoked_at is not None
    assert AuditEntry.objects.first().action == ServerAudit.SERVER_REVOKED
