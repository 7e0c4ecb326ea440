"""The upload-server registry: who may see it and register, rotate or revoke servers."""

import re

import pytest
from django.urls import reverse

from core.models import AuditEntry
from monitoring import servers
from monitoring.forms import RegisterServerForm
from monitoring.models import ServerAudit, UploadServer, hash_token


@pytest.mark.parametrize("role,status", [("ops", 200), ("engineer", 200), ("manager_a", 403), (None, 302)])
def test_who_sees_the_server_list(login, ops_user, engineer, manager_a, role, status):
    user = {"ops": ops_user, "engineer": engineer, "manager_a": manager_a, None: None}[role]
    assert login(user).get(reverse("monitoring:servers")).status_code == status


def test_ops_register_a_server_and_see_its_token_once(login, ops_user):
    response = login(ops_user).post(reverse("monitoring:server-register"), {"name": "upload-7", "reason": "new box"})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
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


def test_two_registrations_of_one_name_at_once_give_the_second_a_field_error(login, ops_user, monkeypatch):
    """Both pass the form's and the model's checks before either commits (PostgreSQL's read
    committed); the database's unique name refuses the second: a field error, not a 500."""
    client = login(ops_user)
    servers.register_server(ops_user, "upload-9", "the first of two at once")
    monkeypatch.setattr(RegisterServerForm, "clean_name", lambda form: form.cleaned_data["name"])
    monkeypatch.setattr(UploadServer, "validate_unique", lambda server, exclude=None: None)
    response = client.post(reverse("monitoring:server-register"), {"name": "upload-9", "reason": "second"})
    assert response.status_code == 400 and "registered already" in response.content.decode()
    assert UploadServer.objects.filter(name="upload-9").count() == 1


def shown_token(response) -> str | None:
    """A whole token on the page (the list shows only the first characters, then …)."""
    found = re.search(r"uos_[A-Za-z0-9_-]{30,}", response.content.decode())
    return found.group(0) if found else None


def rotate(client, server: UploadServer, prefix: str | None = None):
    return client.post(
        reverse("monitoring:server-rotate-token", args=[server.name]),
        {"reason": "leaked", "token_prefix": prefix if prefix is not None else server.token_prefix},
        follow=True,
    )


def test_a_double_submitted_new_token_shows_one_token_and_it_is_the_live_one(login, ops_user):
    server, _ = servers.register_server(ops_user, "upload-1", "first")
    client = login(ops_user)
    opened_with = server.token_prefix
    first, second = rotate(client, server, opened_with), rotate(client, server, opened_with)
    shown = [r for r in (first, second) if shown_token(r)]
    assert len(shown) == 1 and shown[0] is first
    assert "was replaced already" in second.content.decode()
    token = shown_token(first)
    assert UploadServer.objects.get().token_hash == hash_token(token)
    assert AuditEntry.objects.filter(action=ServerAudit.SERVER_TOKEN_ROTATED).count() == 1


def test_a_new_token_does_not_bring_a_revoked_server_back(login, ops_user):
    server, _ = servers.register_server(ops_user, "upload-1", "first")
    servers.revoke_server(server, ops_user, "decommissioned")
    server.refresh_from_db()
    response = rotate(login(ops_user), server)
    assert shown_token(response) is None and "is revoked" in response.content.decode()
    assert UploadServer.objects.get().revoked_at is not None
    assert not AuditEntry.objects.filter(action=ServerAudit.SERVER_TOKEN_ROTATED).exists()
