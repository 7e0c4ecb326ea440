"""Audit entries no one can edit or delete, in the app or in the admin."""

import pytest
from django.urls import reverse

from core.models import AuditEntry


def test_entries_cannot_be_edited_or_deleted(ops_user, partner_a):
    entry = AuditEntry.objects.first()
    entry.reason = "rewritten"
    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        entry.delete()
    with pytest.raises(PermissionError):
        AuditEntry.objects.all().delete()
    with pytest.raises(PermissionError):
        AuditEntry.objects.update(reason="x")


def test_the_admin_shows_entries_read_only(login, ops_user, partner_a):
    client = login(ops_user)
    entry = AuditEntry.objects.first()
    change_page = client.get(reverse("admin:core_auditentry_change", args=[entry.pk]))
    assert change_page.status_code == 200
    assert b'name="_save"' not in change_page.content
    delete = client.post(reverse("admin:core_auditentry_delete", args=[entry.pk]), {"post": "yes"})
    assert delete.status_code == 403
    assert AuditEntry.objects.filter(pk=entry.pk).exists()
