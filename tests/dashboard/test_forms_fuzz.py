"""Every form fuzzed through its view with random text and numbers: never a 500; input that
is refused shows its errors and changes nothing (a change always leaves an audit entry)."""

import pytest
from django.contrib.messages import get_messages
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from alerting.forms import AlertRuleForm, SilenceForm
from alerting.models import AlertRule, Silence
from core.models import AuditEntry
from fleet.forms import PolicyForm, ScaleForm
from fleet.models import ScalingAction, ScalingGroup, ScalingPolicy
from monitoring.forms import RegisterServerForm, ServerActionForm
from monitoring.models import UploadServer
from partners.forms import LimitsForm, PartnerForm, PauseForm, ResumeForm
from partners.models import FleetSettings, Partner, UploadLimitRow
from tests.factories import make_local_group

FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Random text and numbers, plus the shapes that break parsers: units, exponents, dates, markup.
field_values = st.one_of(
    st.text(max_size=40),
    st.integers(-(10**22), 10**22).map(str),
    st.floats(allow_nan=True).map(str),
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "-1",
            "1",
            "5",
            "1e309",
            "NaN",
            "10 GB",
            "1.5 TB",
            "9" * 30 + " PB",
            "2026-13-45 25:61",
            "2026-12-01 10:00",
            "²",
            "<script>alert(1)</script>",
            "on",
            "bulk",
            "00000000-0000-0000-0000-000000000000",
            "ops@example.org",
            "https://x.example/run",
        ]
    ),
)


def html_names(form) -> list[str]:
    return [bound.html_name for bound in form]


@pytest.fixture
def setup(ops_user, partner_a):
    server = UploadServer.objects.create(name="upload-1", token_hash="c" * 64, token_prefix="uos_cccc")
    group = make_local_group("sim-fleet", desired=2, cooldown_seconds=0)
    return {"partner": partner_a, "server": server, "group": group}


def endpoints(setup) -> dict[str, tuple[str, list[str]]]:
    partner, group, server = setup["partner"], setup["group"], setup["server"]
    return {
        "partner-create": ("/partners/new/", html_names(PartnerForm())),
        "partner-limits": (f"/partners/{partner.slug}/limits/", html_names(LimitsForm(prefix="limits"))),
        "partner-settings": (
            f"/partners/{partner.slug}/settings/",
            html_names(PartnerForm(instance=partner, prefix="settings")),
        ),
        "partner-pause": (f"/partners/{partner.slug}/pause/", html_names(PauseForm(prefix="pause"))),
        "partner-resume": (f"/partners/{partner.slug}/resume/", html_names(ResumeForm(prefix="resume"))),
        "defaults": ("/controls/defaults/", html_names(LimitsForm(prefix="defaults"))),
        "pause-all": ("/controls/pause-all/", html_names(PauseForm(prefix="pause", all_partners=True))),
        "server-register": ("/servers/register/", html_names(RegisterServerForm())),
        "server-revoke": (f"/servers/{server.name}/revoke/", html_names(ServerActionForm())),
        "alert-rule": ("/alerts/rules/new/", html_names(AlertRuleForm())),
        "silence": ("/alerts/silences/", html_names(SilenceForm())),
        "scale": (f"/fleet/{group.name}/scale/", html_names(ScaleForm(group=group))),
        "policy": (f"/fleet/{group.name}/policy/", html_names(PolicyForm(prefix=f"policy-{group.pk}"))),
    }


def state() -> tuple:
    """Everything a form could change, to compare when no audit entry says something changed."""
    return (
        list(Partner.objects.order_by("pk").values()),
        list(FleetSettings.objects.values()),
        list(UploadLimitRow.objects.order_by("client_id").values()),
        list(AlertRule.objects.order_by("pk").values()),
        list(Silence.objects.order_by("pk").values()),
        list(UploadServer.objects.order_by("pk").values("name", "token_hash", "revoked_at")),
        list(ScalingGroup.objects.order_by("pk").values()),
        list(ScalingPolicy.objects.order_by("pk").values()),
        ScalingAction.objects.count(),
    )


def shows_errors(response) -> bool:
    if response.status_code == 302:
        return any(message.level_tag == "error" for message in get_messages(response.wsgi_request))
    page = response.content.decode()
    return 'class="error"' in page or "alert error" in page


@pytest.mark.parametrize(
    "endpoint",
    [
        "partner-create",
        "partner-limits",
        "partner-settings",
        "partner-pause",
        "partner-resume",
        "defaults",
        "pause-all",
        "server-register",
        "server-revoke",
        "alert-rule",
        "silence",
        "scale",
        "policy",
    ],
)
def test_a_form_never_fails_and_refuses_bad_input_without_changing_anything(login, ops_user, setup, endpoint):
    url, names = endpoints(setup)[endpoint]
    client = login(ops_user)

    @given(data=st.fixed_dictionaries({}, optional={name: field_values for name in names}))
    @FUZZ
    def post_random(data):
        audit_before, before = AuditEntry.objects.count(), state()
        response = client.post(url, data)
        assert response.status_code < 500, f"{endpoint} {data!r}: {response.status_code}"
        if AuditEntry.objects.count() > audit_before:
            return  # accepted: a real, audited change
        assert state() == before, f"{endpoint} changed something without an audit entry: {data!r}"
        if response.status_code == 400 or endpoint == "policy":
            assert shows_errors(response), f"{endpoint} refused {data!r} without saying why"

    post_random()


@given(to=field_values)
@example(to="²")  # a digit to str.isdigit(), not to int(): it was a 500
@FUZZ
def test_the_scale_confirmation_page_takes_any_capacity_in_the_query(login, ops_user, setup, to):
    response = login(ops_user).get(f"/fleet/{setup['group'].name}/scale/", {"to": to})
    assert response.status_code in (200, 400)


@given(
    query=st.fixed_dictionaries(
        {}, optional={name: field_values for name in ("partner", "actor", "action", "since", "until", "page")}
    )
)
@FUZZ
def test_the_audit_filter_takes_any_query(login, ops_user, partner_a, query):
    response = login(ops_user).get("/audit/", query)
    assert response.status_code in (200, 400)
    if response.status_code == 400:
        assert shows_errors(response)
