"""The what-if page: a partner's upload projected on the simulated fleet, and applying its limits."""

from urllib.parse import urlencode

import pytest
from django.urls import reverse

from core.models import AuditEntry
from dashboard.views import APPLY_REASON, duration
from fleet_sim.whatif import SIZE_MIXES, WhatIf, project
from partners.models import Partner, PartnerAudit, UploadLimitRow

pytestmark = pytest.mark.django_db

# Small enough that each projection takes a fraction of a second.
SMALL = {
    "files": 50,
    "size_mix": "photos",
    "servers": 2,
    "max_concurrent_uploads": 12,
    "max_bytes_in_flight": "2 GB",
    "requests_per_minute": 600,
}


def what_if_url(partner, **fields) -> str:
    return f"{reverse('what-if')}?{urlencode({'partner': partner.slug, **SMALL, **fields})}"


def apply_data(partner, revision=None, **fields) -> dict:
    query = urlencode({"partner": partner.slug, **SMALL, **fields})
    return {
        "apply-what_if": query,
        "apply-revision": partner.revision if revision is None else revision,
        "apply-requests_per_minute": fields.get("requests_per_minute", SMALL["requests_per_minute"]),
        "apply-burst": partner.burst or "",
        "apply-max_concurrent_uploads": fields.get("max_concurrent_uploads", SMALL["max_concurrent_uploads"]),
        "apply-max_bytes_in_flight": fields.get("max_bytes_in_flight", SMALL["max_bytes_in_flight"]),
        "apply-daily_upload_bytes": partner.daily_upload_bytes or "",
        "apply-reason": APPLY_REASON,
    }


def test_the_form_starts_from_the_partners_limits_and_the_live_servers(login, ops_user, partner_a, settings):
    settings.FLEET_CONFIGURED_SERVER_COUNT = 3
    response = login(ops_user).get(reverse("what-if"), {"partner": partner_a.slug})
    form = response.context["form"]
    assert form.initial["partner"] == partner_a
    assert form.initial["max_concurrent_uploads"] == 16
    assert form.initial["max_bytes_in_flight"] == 40 * 10**9
    assert form.initial["requests_per_minute"] == 120
    assert form.initial["servers"] == 3, "no server reported yet: the fleet's configured size"
    assert 'value="40 GB"' in response.text
    assert "projection" not in response.context


def test_the_result_is_the_simulated_projection_in_words_and_figures(login, ops_user, partner_a):
    response = login(ops_user).get(what_if_url(partner_a))
    assert response.status_code == 200
    expected = project(
        WhatIf(
            "theirstory-sdk",
            50,
            SIZE_MIXES["photos"],
            2,
            requests_per_minute=600,
            burst=20,
            max_concurrent_uploads=12,
            max_bytes_in_flight=2 * 10**9,
        )
    )
    assert response.context["projection"] == expected
    assert "TheirStory&#x27;s 50 files" in response.text and "would take about" in response.text
    # The table's Completion row in words, as in the sentence ("16 h 22 min", never "58911 s").
    assert f'<th>Completion</th><td class="num">{duration(expected.completion_seconds)}</td>' in response.text
    assert duration(58911) == "16 h 22 min"
    assert "Fleet CPU would average" in response.text
    assert response.context["chart"]["cpu"] == expected.cpu_by_minute


def test_more_servers_show_a_shorter_completion(login, ops_user, partner_a):
    client = login(ops_user)
    fields = {
        "files": 20,
        "size_mix": "large-videos",
        "max_concurrent_uploads": 24,
        "max_bytes_in_flight": "",
        "requests_per_minute": "",
    }
    one = client.get(what_if_url(partner_a, servers=1, **fields)).context["projection"]
    four = client.get(what_if_url(partner_a, servers=4, **fields)).context["projection"]
    assert four.completion_seconds < one.completion_seconds
    assert four.mean_cpu_percent < one.mean_cpu_percent


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"files": 0}, "files", "greater than or equal to 1"),
        ({"servers": 99}, "servers", "less than or equal to 16"),
        ({"size_mix": "explicit"}, "smallest_file", "Give a size"),
        (
            {"size_mix": "explicit", "smallest_file": "2 GB", "largest_file": "1 GB"},
            "largest_file",
            "at least the smallest",
        ),
        ({"size_mix": "explicit", "smallest_file": "12 parsecs", "largest_file": "1 GB"}, "smallest_file", ""),
        ({"max_bytes_in_flight": "lots"}, "max_bytes_in_flight", ""),
        ({"max_concurrent_uploads": 0}, "max_concurrent_uploads", "at least 1"),
    ],
)
def test_bad_input_gives_field_errors_and_no_projection(login, ops_user, partner_a, fields, field, message):
    response = login(ops_user).get(what_if_url(partner_a, **fields))
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert field in errors and message in " ".join(errors[field])
    assert f'id="id_{field}-error"' in response.text
    assert "projection" not in response.context


def test_explicit_sizes_in_human_units_are_projected(login, ops_user, partner_a):
    response = login(ops_user).get(
        what_if_url(partner_a, files=10, size_mix="explicit", smallest_file="200 MB", largest_file="0.3 GB")
    )
    assert response.status_code == 200
    assert 10 * 200 * 10**6 <= response.context["projection"].total_bytes <= 10 * 300 * 10**6


def test_a_manager_may_only_choose_their_own_partners(login, manager_a, partner_a, partner_b):
    client = login(manager_a)
    page = client.get(reverse("what-if"))
    assert list(page.context["form"].fields["partner"].queryset) == [partner_a]
    response = client.get(what_if_url(partner_b))
    assert response.status_code == 400 and "partner" in response.context["form"].errors


def test_ops_applies_the_proposed_limits_audited_and_published(login, ops_user, partner_a):
    version_before = UploadLimitRow.objects.get(client_id="theirstory-sdk").version
    response = login(ops_user).post(reverse("what-if-apply"), apply_data(partner_a))
    assert response.status_code == 302 and response.url == partner_a.get_absolute_url()
    partner = Partner.objects.get(pk=partner_a.pk)
    # 600 requests a minute proposed, 300 applied: the partner's ceiling holds, for ops too.
    assert (partner.max_concurrent_uploads, partner.max_bytes_in_flight, partner.requests_per_minute) == (
        12,
        2 * 10**9,
        300,
    )
    assert partner.burst == 20 and partner.daily_upload_bytes == 4 * 10**12, "the other limits stay"
    entry = AuditEntry.objects.filter(action=PartnerAudit.LIMITS_CHANGED).latest("id")
    assert entry.actor == ops_user
    assert entry.before == {"requests_per_minute": 120, "max_concurrent_uploads": 16, "max_bytes_in_flight": 40 * 10**9}
    assert "what-if: 50 files of photos (2–8 MB) on 2 servers" in entry.reason
    assert "/risk/what-if/?partner=theirstory" in entry.reason
    row = UploadLimitRow.objects.get(client_id="theirstory-sdk")
    assert row.max_concurrent_uploads == 12 and row.version > version_before


def test_the_result_offers_the_apply_form_with_the_proposed_limits(login, manager_a, partner_a):
    response = login(manager_a).get(what_if_url(partner_a))
    form = response.context["apply_form"]
    assert form.initial["max_concurrent_uploads"] == 12 and form.initial["revision"] == partner_a.revision
    assert "Apply these limits to TheirStory" in response.text


def test_a_manager_sees_at_once_which_proposed_limits_exceed_the_ceilings(login, manager_a, partner_a):
    response = login(manager_a).get(what_if_url(partner_a, max_concurrent_uploads=50))
    errors = response.context["apply_form"].errors
    assert set(errors) == {"max_concurrent_uploads", "requests_per_minute"}
    assert "Above the ceiling set by ops (40)" in errors["max_concurrent_uploads"][0]
    assert "Above the ceiling set by ops (300)" in errors["requests_per_minute"][0]
    assert 'id="id_apply-max_concurrent_uploads-error"' in response.text


def test_ops_sees_no_ceiling_errors(login, ops_user, partner_a):
    response = login(ops_user).get(what_if_url(partner_a, max_concurrent_uploads=50))
    assert response.context["apply_form"].errors == {}


def test_a_manager_within_the_ceilings_may_apply(login, manager_a, partner_a):
    response = login(manager_a).post(reverse("what-if-apply"), apply_data(partner_a, requests_per_minute=200))
    assert response.status_code == 302
    partner = Partner.objects.get(pk=partner_a.pk)
    assert (partner.max_concurrent_uploads, partner.requests_per_minute) == (12, 200)
    assert AuditEntry.objects.latest("id").actor == manager_a


def test_a_manager_above_the_ceilings_gets_field_errors_and_nothing_changes(login, manager_a, partner_a):
    entries = AuditEntry.objects.count()
    response = login(manager_a).post(
        reverse("what-if-apply"), apply_data(partner_a, max_concurrent_uploads=50, max_bytes_in_flight="")
    )
    assert response.status_code == 400
    errors = response.context["apply_form"].errors
    assert "Above the ceiling set by ops (40)" in errors["max_concurrent_uploads"][0]
    assert "Cannot be unlimited" in errors["max_bytes_in_flight"][0]
    assert 'id="id_apply-max_concurrent_uploads-error"' in response.text
    assert Partner.objects.get(pk=partner_a.pk).max_concurrent_uploads == 16
    assert AuditEntry.objects.count() == entries


def test_an_engineer_sees_the_projection_but_cannot_apply(login, engineer, partner_a):
    client = login(engineer)
    page = client.get(what_if_url(partner_a))
    assert page.status_code == 200 and page.context["apply_form"] is None
    assert "Apply these limits" not in page.text
    assert client.post(reverse("what-if-apply"), apply_data(partner_a)).status_code == 403
    assert Partner.objects.get(pk=partner_a.pk).max_concurrent_uploads == 16


def test_another_partners_manager_cannot_apply(login, manager_b, partner_a):
    response = login(manager_b).post(reverse("what-if-apply"), apply_data(partner_a))
    assert response.status_code == 400, "the partner is not among the choices a manager may see"
    assert Partner.objects.get(pk=partner_a.pk).max_concurrent_uploads == 16


def test_a_stale_apply_saves_nothing(login, ops_user, partner_a):
    stale = apply_data(partner_a, revision=partner_a.revision - 1)
    response = login(ops_user).post(reverse("what-if-apply"), stale)
    assert response.status_code == 400
    assert "since you opened it" in response.text
    assert Partner.objects.get(pk=partner_a.pk).max_concurrent_uploads == 16


def test_the_page_needs_login(client):
    response = client.get(reverse("what-if"))
    assert response.status_code == 302 and "/accounts/login/" in response.url
