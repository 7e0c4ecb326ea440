"""Every form and the report API driven with numbers at and beyond the edges of the columns they
land in (int32 `integer`, `bigint`; docs/shared-config-table.md): never a 5xx, and whatever is
accepted fits its column, on SQLite (which would store up to 2^63 - 1 anywhere) as on
PostgreSQL (which refuses at INSERT time). .ci/run runs the suite on both databases.

Each example starts from a valid form, so the boundary values reach the save; it runs in a
savepoint rolled back afterwards, so every example starts from the same state."""

import json
from datetime import timedelta

import pytest
from django.apps import apps
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerting.models import AlertRule
from core.bounds import BIGINT_MAX, INT32_MAX
from fleet.models import ScalingPolicy
from monitoring import servers
from monitoring.models import UploadServer
from monitoring.reports import CLIENT_FIELDS, CLIENT_OPTIONAL_COUNTERS
from partners.models import FleetSettings, Partner
from tests.factories import limits_post, make_local_group, report_body

OUR_APPS = ("core", "partners", "monitoring", "fleet", "alerting", "dashboard")
BOUNDARY = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
EDGES = [
    0,
    1,
    -1,
    INT32_MAX - 1,
    INT32_MAX,
    INT32_MAX + 1,
    2**32,
    2**40,
    2**53 + 1,
    2**62,
    BIGINT_MAX,
    BIGINT_MAX + 1,
    2**64,
    10**30,
    -(2**63) - 1,
]
integers = st.one_of(st.sampled_from(EDGES), st.integers(-(2**70), 2**70))
numbers = st.one_of(integers.map(str), st.sampled_from(["1e10", "2147483647.0", "9" * 40, "-0"]))
sizes = st.one_of(
    numbers,
    st.sampled_from(
        ["9300 PB", "8192 PiB", "8191 PiB", "9223 PB", "9224 PB", f"{BIGINT_MAX} B", f"{BIGINT_MAX + 1} B", "0.5 B"]
    ),
)

COLUMN_RANGES = {
    "PositiveIntegerField": (0, INT32_MAX),
    "IntegerField": (-(2**31), INT32_MAX),
    "PositiveSmallIntegerField": (0, 2**15 - 1),
    "PositiveBigIntegerField": (0, BIGINT_MAX),
    "BigIntegerField": (-(2**63), BIGINT_MAX),
}


def assert_every_integer_fits_its_column() -> None:
    """What an int32 or int64 reader of any table would read: every stored integer in range."""
    for model in apps.get_models():
        if model._meta.app_label not in OUR_APPS:
            continue
        for field in model._meta.concrete_fields:
            bounds = COLUMN_RANGES.get(field.get_internal_type())
            if bounds is None or isinstance(field, models.AutoField):
                continue
            low, high = bounds
            outside = model.objects.exclude(**{f"{field.attname}__isnull": True}).exclude(
                **{f"{field.attname}__gte": low, f"{field.attname}__lte": high}
            )
            assert not outside.exists(), f"{model.__name__}.{field.name} holds a value outside {bounds}"


def prefixed(prefix: str, values: dict) -> dict:
    return {f"{prefix}-{name}": value for name, value in values.items()}


def in_an_hour() -> str:
    return (timezone.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")


LIMITS = ("requests_per_minute", "burst", "max_concurrent_uploads")
BYTE_LIMITS = ("max_bytes_in_flight", "daily_upload_bytes")


def forms(partner: Partner, group, rule: AlertRule) -> dict:
    """name → (url, a valid post built from the current state, its count fields, its byte fields)."""
    fleet = FleetSettings.load()
    return {
        "limits": (
            reverse("partners:limits", args=[partner.slug]),
            limits_post(partner),
            [f"limits-{n}" for n in LIMITS],
            [f"limits-{n}" for n in BYTE_LIMITS],
        ),
        "shadow": (
            reverse("partners:shadow", args=[partner.slug]),
            prefixed("shadow", {"reason": "try", "revision": partner.revision, "shadow_requests_per_minute": "60"}),
            [f"shadow-shadow_{n}" for n in LIMITS],
            [f"shadow-shadow_{n}" for n in BYTE_LIMITS],
        ),
        "override": (
            reverse("partners:override", args=[partner.slug]),
            {
                **{name.replace("limits-", "override-"): value for name, value in limits_post(partner).items()},
                "override-max_concurrent_uploads": "4",
                "override-ends_at": in_an_hour(),
            },
            [f"override-{n}" for n in LIMITS],
            [f"override-{n}" for n in BYTE_LIMITS],
        ),
        "settings": (
            reverse("partners:settings", args=[partner.slug]),
            prefixed(
                "settings",
                {
                    "name": partner.name,
                    "slug": partner.slug,
                    "client_id": partner.client_id,
                    "priority": partner.priority,
                    "reason": "ceilings",
                    "revision": partner.revision,
                },
            ),
            [f"settings-ceiling_{n}" for n in LIMITS],
            [f"settings-ceiling_{n}" for n in BYTE_LIMITS],
        ),
        "defaults": (
            reverse("partners:controls-defaults"),
            prefixed("defaults", {"reason": "defaults", "revision": fleet.revision, "requests_per_minute": "500"}),
            [f"defaults-{n}" for n in LIMITS],
            [f"defaults-{n}" for n in BYTE_LIMITS],
        ),
        "load-control": (
            reverse("partners:controls-load"),
            prefixed(
                "load",
                {
                    "load_control_enabled": "on",
                    "load_cpu_target_percent": "70",
                    "load_window_seconds": "300",
                    "load_reserved_share_percent": "30",
                    "load_decrease_factor": "0.7",
                    "load_increase_step_percent": "10",
                    "load_server_upload_capacity": "80",
                    "reason": "tune",
                    "revision": fleet.revision,
                },
            ),
            ["load-load_window_seconds", "load-load_server_upload_capacity", "load-load_cpu_target_percent"],
            [],
        ),
        "alert-rule": (
            reverse("alerting:rule-edit", args=[rule.id]),
            {
                **{k: ("on" if v is True else v) for k, v in rule.edit_values().items() if v not in ("", False, None)},
                "reason": "tune",
            },
            ["window_seconds", "for_seconds", "resolve_after_seconds", "repeat_interval_seconds", "threshold"],
            [],
        ),
        "silence": (
            reverse("alerting:silence-create"),
            {"rule": rule.id, "subject": "", "comment": "maintenance", "duration_minutes": "60"},
            ["duration_minutes", "rule"],
            [],
        ),
        "scale": (
            reverse("fleet:scale", args=[group.name]),
            {"from_capacity": "2", "to_capacity": "3", "idempotency_key": "5d0b3c8e-3f5e-4c1a-9d1e-0b7c1c2a9f10"}
            | {"reason": "backlog"},
            ["from_capacity", "to_capacity"],
            [],
        ),
        "policy": (
            reverse("fleet:policy", args=[group.name]),
            prefixed(
                f"policy-{group.pk}",
                {
                    "enabled": "on",
                    "target_cpu_percent": "60",
                    "tolerance_percent": "10",
                    "evaluation_minutes": "3",
                    "stabilization_minutes": "10",
                    "max_step": "3",
                    "max_data_age_minutes": "5",
                    "reason": "on",
                },
            ),
            [f"policy-{group.pk}-{n}" for n in ("max_step", "evaluation_minutes", "max_data_age_minutes")],
            [],
        ),
        "what-if-apply": (
            reverse("what-if-apply"),
            {
                "apply-what_if": f"partner={partner.slug}&files=50&size_mix=photos&servers=2"
                "&max_concurrent_uploads=12&max_bytes_in_flight=2+GB&requests_per_minute=200",
                **prefixed("apply", {"reason": "apply", "revision": partner.revision, "requests_per_minute": "200"}),
                **prefixed("apply", {"burst": "20", "max_concurrent_uploads": "12", "max_bytes_in_flight": "2 GB"}),
            },
            [f"apply-{n}" for n in LIMITS],
            [f"apply-{n}" for n in BYTE_LIMITS],
        ),
    }


@pytest.fixture
def setup(ops_user, partner_a):
    group = make_local_group("sim-fleet", desired=2, max_capacity=10**4, cooldown_seconds=0)
    ScalingPolicy.objects.create(group=group)
    return {"partner": partner_a, "group": group, "rule": AlertRule.objects.get(slug="fleet-cpu-high")}


FORM_NAMES = [
    "limits",
    "shadow",
    "override",
    "settings",
    "defaults",
    "load-control",
    "alert-rule",
    "silence",
    "scale",
    "policy",
    "what-if-apply",
]


@pytest.mark.parametrize("form_name", FORM_NAMES)
def test_a_form_with_boundary_numbers_never_fails_and_stores_only_what_fits(login, ops_user, setup, form_name):
    client = login(ops_user)

    @given(data=st.data())
    @BOUNDARY
    def post_boundaries(data):
        with transaction.atomic():
            partner = Partner.objects.get(pk=setup["partner"].pk)
            url, post, count_fields, byte_fields = forms(partner, setup["group"], setup["rule"])[form_name]
            for name in data.draw(st.lists(st.sampled_from(count_fields + byte_fields), min_size=1, unique=True)):
                post[name] = data.draw(sizes if name in byte_fields else numbers, label=name)
            response = client.post(url, post)
            assert response.status_code < 500, f"{form_name} {post!r}: {response.status_code}"
            assert_every_integer_fits_its_column()
            transaction.set_rollback(True)

    post_boundaries()


@given(
    what_if=st.fixed_dictionaries(
        {},
        optional={
            name: numbers
            for name in ("files", "servers", "max_concurrent_uploads", "requests_per_minute", "max_bytes_in_flight")
        },
    )
)
@BOUNDARY
def test_the_what_if_takes_boundary_numbers_in_its_query(login, ops_user, setup, what_if):
    query = {"partner": setup["partner"].slug, "files": "50", "size_mix": "photos", "servers": "2", **what_if}
    response = login(ops_user).get(reverse("what-if"), query)
    assert response.status_code in (200, 400)


FIGURES = CLIENT_FIELDS + CLIENT_OPTIONAL_COUNTERS
report_changes = st.fixed_dictionaries(
    {},
    optional={
        "sequence": integers,
        "config_version": integers,
        "interval_seconds": integers,
        "cpu_percent": st.one_of(integers, st.floats(allow_nan=True, allow_infinity=True)),
    },
)
client_figures = st.dictionaries(st.sampled_from(FIGURES), integers, min_size=1)


@pytest.fixture
def server_and_token(ops_user):
    return servers.register_server(ops_user, "upload-1", "boundary values")


@given(changes=report_changes, clients=st.lists(client_figures, min_size=1, max_size=3))
@BOUNDARY
def test_the_report_api_with_boundary_numbers_never_fails_and_stores_only_what_fits(
    client, server_and_token, changes, clients
):
    server, token = server_and_token
    with transaction.atomic():
        body = report_body(server.name, **changes)
        body["clients"] = {f"client-{i}": figures for i, figures in enumerate(clients)}
        response = client.post(
            reverse("monitoring:reports"),
            json.dumps(body),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        assert response.status_code in (202, 400), response.content[:300]
        assert response["Content-Type"].startswith("application/json")
        if response.status_code == 202 and response.json()["status"] == "accepted":
            assert UploadServer.objects.get(pk=server.pk).last_sequence == body["sequence"]
        assert_every_integer_fits_its_column()
        transaction.set_rollback(True)
