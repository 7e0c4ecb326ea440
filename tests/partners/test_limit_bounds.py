"""Limits, ceilings and shadow values stay within the columns they land in (`integer` for counts,
`bigint` for bytes, docs/shared-config-table.md), on SQLite as on PostgreSQL: a larger value is
a field error naming the maximum, never a 500, a 503 or a value an int32 reader overflows on."""

import pytest
from django.db import DataError
from django.urls import reverse

from core.bounds import BIGINT_MAX, INT32_MAX
from core.models import AuditEntry
from partners import changes
from partners.models import FleetSettings, Partner, UploadLimitRow
from tests.factories import limits_post


def published(partner) -> dict:
    row = UploadLimitRow.objects.get(client_id=partner.client_id)
    return {"rpm": row.requests_per_minute, "burst": row.burst, "bytes": row.max_bytes_in_flight}


@pytest.mark.parametrize(
    "field, value, maximum",
    [
        ("requests_per_minute", str(2**63), str(INT32_MAX)),
        ("requests_per_minute", str(2**31), str(INT32_MAX)),
        ("max_concurrent_uploads", str(10**30), str(INT32_MAX)),
        ("max_bytes_in_flight", "9300 PB", str(BIGINT_MAX)),
        ("daily_upload_bytes", "8192 PiB", str(BIGINT_MAX)),
        ("max_bytes_in_flight", str(2**63), str(BIGINT_MAX)),
    ],
)
def test_ops_limit_above_its_column_is_a_field_error_naming_the_maximum(
    login, ops_user, partner_a, field, value, maximum
):
    before, audit_before = published(partner_a), AuditEntry.objects.count()
    response = login(ops_user).post(
        reverse("partners:limits", args=[partner_a.slug]), limits_post(partner_a, **{field: value})
    )
    assert response.status_code == 400
    errors = response.context["limits_form"].errors
    assert maximum in " ".join(errors[field])
    assert published(partner_a) == before
    assert AuditEntry.objects.count() == audit_before


def test_the_largest_values_the_columns_hold_are_accepted(login, ops_user, partner_a):
    response = login(ops_user).post(
        reverse("partners:limits", args=[partner_a.slug]),
        limits_post(partner_a, requests_per_minute=str(INT32_MAX), max_bytes_in_flight=str(BIGINT_MAX)),
    )
    assert response.status_code == 302
    assert published(partner_a)["rpm"] == INT32_MAX
    assert published(partner_a)["bytes"] == BIGINT_MAX


def test_a_managers_burst_without_a_ceiling_is_bounded_too(login, ops_user, manager_a, partner_a):
    Partner.objects.filter(pk=partner_a.pk).update(ceiling_burst=None)
    partner_a.refresh_from_db()
    response = login(manager_a).post(
        reverse("partners:limits", args=[partner_a.slug]), limits_post(partner_a, burst=str(2**63))
    )
    assert response.status_code == 400
    assert str(INT32_MAX) in " ".join(response.context["limits_form"].errors["burst"])


def test_a_ceiling_above_its_column_is_a_field_error(login, ops_user, partner_a):
    data = {
        "settings-name": partner_a.name,
        "settings-slug": partner_a.slug,
        "settings-client_id": partner_a.client_id,
        "settings-priority": partner_a.priority,
        "settings-ceiling_requests_per_minute": str(2**40),
        "settings-ceiling_max_bytes_in_flight": "9300 PB",
        "settings-reason": "raise",
        "settings-revision": partner_a.revision,
    }
    response = login(ops_user).post(reverse("partners:settings", args=[partner_a.slug]), data)
    assert response.status_code == 400
    errors = response.context["settings_form"].errors
    assert str(INT32_MAX) in " ".join(errors["ceiling_requests_per_minute"])
    assert str(BIGINT_MAX) in " ".join(errors["ceiling_max_bytes_in_flight"])


def test_a_shadow_value_above_its_column_is_a_field_error(login, ops_user, partner_a):
    data = {
        "shadow-shadow_requests_per_minute": str(2**31),
        "shadow-reason": "try",
        "shadow-revision": partner_a.revision,
    }
    response = login(ops_user).post(reverse("partners:shadow", args=[partner_a.slug]), data)
    assert response.status_code == 400
    assert str(INT32_MAX) in " ".join(response.context["shadow_form"].errors["shadow_requests_per_minute"])


@pytest.mark.parametrize(
    "field, value",
    [("load_window_seconds", str(2**40)), ("load_server_upload_capacity", str(2**31))],
)
def test_load_coupled_settings_above_their_column_are_field_errors(login, ops_user, field, value):
    fleet = FleetSettings.load()
    data = {
        "load-load_cpu_target_percent": "70",
        "load-load_window_seconds": "300",
        "load-load_reserved_share_percent": "30",
        "load-load_decrease_factor": "0.7",
        "load-load_increase_step_percent": "10",
        "load-load_server_upload_capacity": "80",
        "load-reason": "tune",
        "load-revision": fleet.revision,
        f"load-{field}": value,
    }
    response = login(ops_user).post(reverse("partners:controls-load"), data)
    assert response.status_code == 400
    assert str(INT32_MAX) in " ".join(response.context["load_form"].errors[field])
    assert FleetSettings.load().revision == fleet.revision


def test_a_value_the_database_refuses_as_out_of_range_is_a_400_not_a_503(login, ops_user, partner_a, monkeypatch):
    # Should a bound ever be missing: PostgreSQL's "integer out of range" is input to correct,
    # not "try again in a moment".
    def out_of_range(*args, **kwargs):
        raise DataError("integer out of range")

    monkeypatch.setattr(changes, "change_limits", out_of_range)
    response = login(ops_user).post(reverse("partners:limits", args=[partner_a.slug]), limits_post(partner_a))
    assert response.status_code == 400
    assert "does not fit the column" in " ".join(response.context["limits_form"].non_field_errors())
