"""Shadow limits on the partner page: who may set them, bad input, audit, publication, and
what they would have done over the last day."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEntry
from monitoring import metrics
from monitoring.models import Rollup
from partners.models import LIMIT_FIELDS, Partner, PartnerAudit, UploadLimitRow


def shadow_post(partner, **values) -> dict:
    data = {f"shadow-shadow_{name}": "" for name in LIMIT_FIELDS}
    data.update({"shadow-reason": "try a tighter cap", "shadow-revision": str(partner.revision)})
    data.update({f"shadow-shadow_{name}": value for name, value in values.items()})
    return data


def table_row(partner):
    return UploadLimitRow.objects.get(client_id=partner.client_id)


def test_a_manager_sets_a_shadow_value_it_is_audited_and_published_beside_the_limit(login, manager_a, partner_a):
    old_version = table_row(partner_a).version
    response = login(manager_a).post(
        reverse("partners:shadow", args=[partner_a.slug]),
        shadow_post(partner_a, max_concurrent_uploads="8", max_bytes_in_flight="20 GB"),
    )
    assert response.status_code == 302
    row = table_row(partner_a)
    assert (row.shadow_max_concurrent_uploads, row.shadow_max_bytes_in_flight) == (8, 20 * 10**9)
    assert row.max_concurrent_uploads == 16  # the enforced limit is untouched
    assert row.version > old_version
    entry = AuditEntry.objects.filter(partner=partner_a).first()
    assert entry.action == PartnerAudit.SHADOW_CHANGED and entry.actor == manager_a
    assert entry.before == {"shadow_max_concurrent_uploads": None, "shadow_max_bytes_in_flight": None}
    assert entry.after == {"shadow_max_concurrent_uploads": 8, "shadow_max_bytes_in_flight": 20 * 10**9}
    assert entry.reason == "try a tighter cap"


def test_emptying_the_fields_clears_the_shadow_values(login, ops_user, partner_a):
    client = login(ops_user)
    client.post(reverse("partners:shadow", args=[partner_a.slug]), shadow_post(partner_a, requests_per_minute="30"))
    partner_a.refresh_from_db()
    assert table_row(partner_a).shadow_requests_per_minute == 30
    response = client.post(reverse("partners:shadow", args=[partner_a.slug]), shadow_post(partner_a))
    assert response.status_code == 302
    assert table_row(partner_a).shadow_requests_per_minute is None
    assert not Partner.objects.get(pk=partner_a.pk).has_shadow()


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("max_concurrent_uploads", "0", "at least 1"),
        ("max_concurrent_uploads", "many", "whole number"),
        ("max_bytes_in_flight", "5 parsecs", ""),
        ("max_concurrent_uploads", "41", "Above the ceiling set by ops (40)"),
        ("reason", "", "Say why"),
    ],
)
def test_bad_input_gives_a_field_error_and_changes_nothing(login, manager_a, partner_a, field, value, message):
    row_before, audit_before = table_row(partner_a).version, AuditEntry.objects.count()
    name = field if field == "reason" else f"shadow_{field}"
    data = shadow_post(partner_a)
    data[f"shadow-{name}"] = value
    response = login(manager_a).post(reverse("partners:shadow", args=[partner_a.slug]), data)
    assert response.status_code == 400
    assert message in " ".join(response.context["shadow_form"].errors[name])
    assert (table_row(partner_a).version, AuditEntry.objects.count()) == (row_before, audit_before)


def test_ops_may_set_shadow_values_above_the_ceiling(login, ops_user, partner_a):
    response = login(ops_user).post(
        reverse("partners:shadow", args=[partner_a.slug]), shadow_post(partner_a, max_concurrent_uploads="100")
    )
    assert response.status_code == 302
    assert table_row(partner_a).shadow_max_concurrent_uploads == 100


def test_a_manager_of_another_partner_and_an_engineer_cannot_set_shadow_values(login, manager_b, engineer, partner_a):
    url = reverse("partners:shadow", args=[partner_a.slug])
    assert login(manager_b).post(url, shadow_post(partner_a, max_concurrent_uploads="2")).status_code == 404
    assert login(engineer).post(url, shadow_post(partner_a, max_concurrent_uploads="2")).status_code == 403
    assert table_row(partner_a).shadow_max_concurrent_uploads is None
    assert not AuditEntry.objects.filter(action=PartnerAudit.SHADOW_CHANGED).exists()


def test_a_stale_form_is_refused(login, ops_user, partner_a):
    stale = shadow_post(partner_a, max_concurrent_uploads="4")
    client = login(ops_user)
    client.post(reverse("partners:shadow", args=[partner_a.slug]), shadow_post(partner_a, burst="5"))
    response = client.post(reverse("partners:shadow", args=[partner_a.slug]), stale)
    assert response.status_code == 400
    assert "since you opened it" in " ".join(response.context["shadow_form"].non_field_errors())
    assert table_row(partner_a).shadow_max_concurrent_uploads is None


def minute(hours_ago: int, minute_of_hour: int = 5):
    hour = metrics.bucket_start(timezone.now(), 3600) - timedelta(hours=hours_ago)
    return hour + timedelta(minutes=minute_of_hour)


def rolled(partner, metric: str, at, value: float) -> Rollup:
    return Rollup.objects.create(
        metric=metric,
        subject=metrics.client_subject(partner.client_id),
        resolution_seconds=60,
        bucket_start=at,
        sample_count=1,
        total=value,
        minimum=value,
        maximum=value,
    )


def test_the_page_shows_admitted_throttled_and_would_have_throttled_per_hour(login, engineer, partner_a):
    rolled(partner_a, metrics.ADMITTED, minute(2), 40)
    rolled(partner_a, metrics.ADMITTED, minute(2, 30), 2)
    rolled(partner_a, metrics.THROTTLED, minute(2), 3)
    rolled(partner_a, metrics.WOULD_HAVE_THROTTLED, minute(2, 30), 17)
    rolled(partner_a, metrics.WOULD_HAVE_THROTTLED, minute(30), 999)  # older than a day: not shown
    response = login(engineer).get(reverse("partners:detail", args=[partner_a.slug]))
    rows = response.context["shadow_hours"]
    assert [(r["hour"], r["admitted"], r["throttled"], r["would_have_throttled"]) for r in rows] == [
        (metrics.bucket_start(minute(2), 3600), 42, 3, 17)
    ]
    page = response.content.decode()
    assert "Would have throttled" in page and '<td class="num">17</td>' in page
    assert response.context["shadow_form"] is None  # an engineer sees, but cannot change


def test_the_page_says_when_nothing_was_reported(login, manager_a, partner_a):
    page = login(manager_a).get(reverse("partners:detail", args=[partner_a.slug])).content.decode()
    assert "No uploads reported for this partner in the last 24 hours." in page
    assert "Save shadow values" in page


def test_the_audit_log_shows_shadow_changes_in_human_units(login, ops_user, partner_a):
    client = login(ops_user)
    client.post(reverse("partners:shadow", args=[partner_a.slug]), shadow_post(partner_a, max_bytes_in_flight="20 GB"))
    page = client.get(reverse("audit") + f"?partner={partner_a.slug}").content.decode()
    assert '<span class="name">Shadow: bytes in flight</span>: — → <strong>20 GB</strong>' in page
