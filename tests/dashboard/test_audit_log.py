"""The audit log page: every change with before → after and reason, its filters, and a partner's
recent changes on its page. (Entries no one can edit or delete: tests/core/test_audit_entries.py.)"""

from django.urls import reverse

from partners import changes


def test_every_change_is_in_the_audit_log_with_before_after_and_reason(login, ops_user, partner_a):
    changes.change_limits(partner_a, ops_user, {"max_bytes_in_flight": 5 * 10**9}, "cool the fleet", None)
    page = login(ops_user).get(reverse("audit")).content.decode()
    assert "olivia-ops" in page and "cool the fleet" in page
    assert "40 GB → <strong>5 GB</strong>" in page


def test_it_filters_by_partner_action_and_who(login, ops_user, manager_a, partner_a, partner_b):
    changes.pause(partner_b, ops_user, "b is noisy", None)
    changes.change_limits(partner_a, manager_a, {"burst": 10}, "a tweak", None)
    client = login(ops_user)
    page = client.get(reverse("audit"), {"partner": partner_b.slug, "action": "partner.paused"})
    entries = list(page.context["page"].object_list)
    assert [e.reason for e in entries] == ["b is noisy"]
    page = client.get(reverse("audit"), {"actor": "mara"})
    assert [e.reason for e in page.context["page"].object_list] == ["a tweak"]


def test_a_bad_filter_says_what_is_wrong(login, ops_user):
    response = login(ops_user).get(reverse("audit"), {"since": "last tuesday"})
    assert response.status_code == 400
    assert "Enter a valid date" in response.content.decode()


def test_the_partner_page_lists_its_recent_changes(login, manager_a, partner_a):
    changes.change_limits(partner_a, manager_a, {"max_concurrent_uploads": 3}, "calmer", None)
    page = login(manager_a).get(reverse("partners:detail", args=[partner_a.slug])).content.decode()
    assert "calmer" in page and "16 → <strong>3</strong>" in page
