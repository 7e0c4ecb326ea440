"""Every URL in the URL configuration, walked: it needs login, refuses other partners'
managers, and refuses a POST without a CSRF token.

The walker fills each URL's kwargs by name from real objects. A new URL whose kwarg it
cannot fill fails `test_the_walker_can_fill_every_url`: add the kwarg to `kwarg_values`.
"""

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from django.utils.regex_helper import normalize

from alerting.models import Alert, AlertRule, AlertState, Silence
from core.models import AuditEntry
from core.roles import ENGINEERS_GROUP, OPS_GROUP
from monitoring import servers
from partners.models import Override, OverrideKind, Partner
from tests.factories import make_local_group, make_user

# Open to anonymous visitors, on purpose. Static files are served by whitenoise before
# URL routing (and are public), so they are not in the URL configuration at all.
ANONYMOUS_ALLOWED = {
    "accounts/login/": "the login page",
    "accounts/password_reset/": "password reset by email (Django's views)",
    "accounts/password_reset/done/": "password reset by email",
    "accounts/reset/<uidb64>/<token>/": "password reset by email (the link carries a signed token)",
    "accounts/reset/done/": "password reset by email",
    "admin/login/": "the admin's login page",
    "api/v1/reports": "upload servers authenticate with a server token instead (401 without one)",
    "api/v1/openapi.json": "the report API's public contract, for upload server developers",
}
# POSTs that need no CSRF token: a server token or the fleet enrolment secret is no cookie, so
# CSRF does not apply (anonymous, they answer 401 or 403 in JSON).
CSRF_EXEMPT = {"api/v1/reports", "api/v1/enrol", "api/v1/deregister"}
SECRET_PARTNER_TEXT = ("TheirStory", "theirstory-sdk")


@dataclass
class Route:
    route: str  # as written in the URL configuration, e.g. "partners/<slug:slug>/"
    chain: list  # the URLResolver/URLPattern path from the root to the view
    kwargs: tuple[str, ...]

    def __str__(self) -> str:
        return self.route

    @property
    def is_admin(self) -> bool:
        return self.route.startswith("admin/")

    @property
    def partner_scoped(self) -> bool:
        return "slug" in self.kwargs and not self.is_admin


def walk(resolver=None, chain=()) -> list[Route]:
    return walk_patterns((resolver or get_resolver()).url_patterns, chain)


def walk_patterns(patterns, chain=()) -> list[Route]:
    routes = []
    for pattern in patterns:
        here = (*chain, pattern)
        if isinstance(pattern, URLResolver):
            routes.extend(walk(pattern, here))
        elif isinstance(pattern, URLPattern):
            kwargs = tuple(name for p in here for name in p.pattern.regex.groupindex)
            routes.append(Route("".join(str(p.pattern) for p in here), list(here), kwargs))
    return routes


ROUTES = walk()


class UnfillableKwarg(LookupError):
    pass


@pytest.fixture
def objects(ops_user, manager_a, manager_b, engineer, partner_a, partner_b):
    server, _token = servers.register_server(ops_user, "upload-1", "walker")
    group = make_local_group("sim-fleet", desired=2, cooldown_seconds=0)
    rule = AlertRule.objects.order_by("id").first()  # the rules seeded by the migrations
    now = timezone.now()
    silence = Silence.objects.create(
        rule=rule, comment="walker", created_by=ops_user, expires_at=now + timedelta(hours=1)
    )
    alert = Alert.objects.create(
        rule=rule,
        subject="fleet",
        state=AlertState.FIRING,
        value=95,
        threshold=80,
        pending_since=now,
        fired_at=now,
        evaluated_at=now,
    )
    override = Override.objects.create(
        partner=partner_a,
        kind=OverrideKind.LIMITS,
        values={"max_concurrent_uploads": 20},
        replaced={"max_concurrent_uploads": partner_a.max_concurrent_uploads},
        reason="walker",
        created_by=ops_user,
        ends_at=now + timedelta(hours=1),
    )
    return {
        "partner": partner_a,
        "manager": manager_a,
        "server": server,
        "group": group,
        "rule": rule,
        "silence": silence,
        "alert": alert,
        "override": override,
    }


def kwarg_values(route: Route, objects: dict) -> dict[str, str]:
    """A value per kwarg that names an existing object (or any value, for the admin's own)."""
    by_route_prefix = {"name": {"fleet/": objects["group"].name, "servers/": objects["server"].name}}
    plain = {
        "slug": objects["partner"].slug,
        "rule_id": objects["rule"].pk,
        "silence_id": objects["silence"].pk,
        "alert_id": objects["alert"].pk,
        "override_id": objects["override"].pk,
        "user_id": objects["manager"].pk,
        # The admin's and password reset's own kwargs: any value reaches the login check.
        "object_id": 1,
        "content_type_id": 1,
        "id": 1,
        "app_label": "partners",
        "url": "no-such-page/",
        "uidb64": "MQ",
        "token": "set-password",
    }
    values = {}
    for name in route.kwargs:
        if name in by_route_prefix:
            prefix = next((p for p in by_route_prefix[name] if route.route.startswith(p)), None)
            if prefix is None:
                raise UnfillableKwarg(f"{route}: kwarg {name!r} is known, but not under this prefix")
            values[name] = by_route_prefix[name][prefix]
        elif name in plain:
            values[name] = plain[name]
        else:
            raise UnfillableKwarg(
                f"{route}: the URL walker cannot fill kwarg {name!r}; "
                "add it to kwarg_values() in tests/dashboard/test_url_access.py"
            )
    return values


def url_for(route: Route, objects: dict) -> str:
    values = kwarg_values(route, objects)
    path = ""
    for pattern in route.chain:
        template, params = normalize(pattern.pattern.regex.pattern)[0]
        path += template % {name: str(values[name]) for name in params}
    return "/" + path


def is_login_redirect(response, route: Route) -> bool:
    login_paths = ("/accounts/login/", "/admin/login/") if route.is_admin else ("/accounts/login/",)
    return response.status_code == 302 and response["Location"].startswith(login_paths)


def is_json_refusal(response) -> bool:
    return (
        response.status_code in (401, 403)
        and response["Content-Type"].startswith("application/json")
        and "error" in response.json()
    )


def test_the_walker_finds_the_urls_it_should():
    found = {route.route for route in ROUTES}
    for expected in (
        "",
        "partners/<slug:slug>/",
        "partners/<slug:slug>/limits/",
        "api/v1/reports",
        "alerts/<int:alert_id>/acknowledge/",
        "admin/",
        "accounts/login/",
    ):
        assert expected in found
    assert len(found) > 40


@pytest.mark.django_db
def test_the_walker_can_fill_every_url(objects):
    unfillable = []
    for route in ROUTES:
        try:
            url_for(route, objects)
        except UnfillableKwarg as error:
            unfillable.append(str(error))
    assert not unfillable, "\n".join(unfillable)


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_every_url_needs_login(client, objects, route):
    url = url_for(route, objects)
    audit_before = AuditEntry.objects.count()
    responses = {"GET": client.get(url), "POST": client.post(url, {"reason": "anonymous"})}
    if route.route in ANONYMOUS_ALLOWED:
        return
    for method, response in responses.items():
        if method == "GET" and response.status_code == 405:
            continue  # POST-only: the POST below must be refused
        assert is_login_redirect(response, route) or is_json_refusal(response), (
            f"{method} {url} answered {response.status_code} to an anonymous visitor; if it is meant to be "
            f"public, add {route.route!r} to ANONYMOUS_ALLOWED with the reason"
        )
    assert AuditEntry.objects.count() == audit_before


@pytest.mark.django_db
def test_the_anonymous_exceptions_are_all_real_urls():
    assert set(ANONYMOUS_ALLOWED) <= {route.route for route in ROUTES}


def test_the_report_api_refuses_an_anonymous_report_with_a_json_401(client):
    response = client.post("/api/v1/reports", "{}", content_type="application/json")
    assert response.status_code == 401
    assert "token" in response.json()["error"]


def test_the_fillers_name_real_objects(login, ops_user, objects):
    """Ops see every object: a 404 here would mean the walker's kwargs point at nothing."""
    client = login(ops_user)
    for route in ROUTES:
        if route.kwargs and not route.is_admin and route.route not in ANONYMOUS_ALLOWED:
            response = client.get(url_for(route, objects))
            assert response.status_code != 404, f"{route}: {url_for(route, objects)} is a 404 for ops"


PARTNER_SCOPED = [route for route in ROUTES if route.partner_scoped]


def test_there_are_partner_scoped_urls():
    assert len(PARTNER_SCOPED) >= 6


def back_to_its_page(response, method: str) -> bool:
    """A GET of a form's address sends the browser back to the form's page (dashboard/errors.py),
    which is itself checked like any page."""
    return method.lower() == "get" and response.status_code == 302 and "/accounts/login/" not in response["Location"]


@pytest.mark.parametrize("route", PARTNER_SCOPED, ids=str)
def test_partner_scoped_urls_refuse_managers_of_other_partners(login, manager_b, objects, route):
    client = login(manager_b)
    url = url_for(route, objects)
    partner_a = objects["partner"]
    before = (Partner.objects.filter(pk=partner_a.pk).values().get(), AuditEntry.objects.count())
    refused = 0
    for method in ("get", "post"):
        response = getattr(client, method)(url, {"reason": "not mine", "pause-reason": "not mine"})
        if response.status_code == 405 or back_to_its_page(response, method):
            continue  # the view does not take this method at all; the other one is checked
        assert response.status_code in (403, 404), f"{method.upper()} {url}: {response.status_code}"
        refused += 1
        body = response.content.decode(errors="replace")
        for secret in SECRET_PARTNER_TEXT:
            assert secret not in body, f"{method.upper()} {url} leaks {secret!r}"
    assert refused >= 1
    assert (Partner.objects.filter(pk=partner_a.pk).values().get(), AuditEntry.objects.count()) == before


@pytest.fixture
def csrf_client(ops_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(ops_user)
    return client


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_every_post_without_a_csrf_token_is_refused(csrf_client, objects, route):
    url = url_for(route, objects)
    audit_before = AuditEntry.objects.count()
    response = csrf_client.post(url, {"reason": "forged", "pause-reason": "forged"})
    if route.route in CSRF_EXEMPT:
        assert response.status_code != 403 or "CSRF" not in response.content.decode()
        return
    assert response.status_code == 403, f"POST {url} without a CSRF token: {response.status_code}"
    assert "CSRF" in response.content.decode()
    assert AuditEntry.objects.count() == audit_before


def test_only_the_upload_server_apis_are_csrf_exempt():
    exempt = {route.route for route in ROUTES if getattr(route.chain[-1].callback, "csrf_exempt", False)}
    assert exempt == CSRF_EXEMPT


def test_a_post_with_the_token_goes_through(ops_user, partner_a):
    """The refusals above are CSRF's doing: the same POST with the token is accepted."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(ops_user)
    page = client.get(f"/partners/{partner_a.slug}/")
    token = page.cookies["csrftoken"].value
    response = client.post(
        f"/partners/{partner_a.slug}/pause/", {"pause-reason": "with token", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    assert Partner.objects.get(pk=partner_a.pk).paused


@pytest.mark.django_db
def test_a_new_url_with_an_unknown_kwarg_fails_loudly_naming_it(objects):
    from django.urls import path

    route = walk_patterns([path("partners/<slug:slug>/widgets/<int:widget_id>/", lambda request: None)])[0]
    with pytest.raises(UnfillableKwarg, match="cannot fill kwarg 'widget_id'"):
        url_for(route, objects)


# ---- five more kinds of user: every URL, GET and POST ------------------------------------


@pytest.fixture
def co_manager(partner_a):
    """A second manager of partner A."""
    user = make_user("cora-co-manager")
    partner_a.managers.add(user)
    return user


@pytest.fixture
def extra_users(db, co_manager):
    return {
        "second manager of partner A": co_manager,
        "user in no group": make_user("nina-no-group"),
        "inactive ops user": make_user("ivan-inactive", OPS_GROUP, is_active=False, is_staff=True),
        "staff outside ops": make_user("stan-staff", is_staff=True),
        "ops and engineer": make_two_group_user(),
    }


def make_two_group_user():
    user = make_user("tess-two-groups", OPS_GROUP)
    user.groups.add(Group.objects.get_or_create(name=ENGINEERS_GROUP)[0])
    return user


# What a user without a role must not get: the fleet's figures.
FLEET_JSON = [
    "api/overview",
    "api/fleet-status",
    "api/charts/cpu",
    "api/charts/outcomes",
    "api/charts/queues",
    "api/charts/timeline",
    "api/charts/uploads",
    "api/charts/bytes",
]
NO_ROLE = ("user in no group", "staff outside ops")


def walk_as(client, objects) -> dict:
    """(route, method) → response, for every URL."""
    answers = {}
    for route in ROUTES:
        url = url_for(route, objects)
        answers[(route.route, "GET")] = client.get(url)
        answers[(route.route, "POST")] = client.post(url, {"reason": "walker", "pause-reason": "walker"})
    return answers


def partner_a_state(partner) -> tuple:
    return Partner.objects.filter(pk=partner.pk).values().get(), partner.managers.count(), partner.paused


@pytest.mark.parametrize(
    "kind",
    ["second manager of partner A", "user in no group", "inactive ops user", "staff outside ops", "ops and engineer"],
)
def test_every_url_as_five_more_kinds_of_user(client, objects, extra_users, kind):
    user = extra_users[kind]
    client.force_login(user)
    partner_a = objects["partner"]
    audit_before, state_before = AuditEntry.objects.count(), partner_a_state(partner_a)
    answers = walk_as(client, objects)
    failures = [f"{method} {route}: {r.status_code}" for (route, method), r in answers.items() if r.status_code >= 500]
    assert not failures, failures
    if kind == "inactive ops user":
        # An inactive account's session counts for nothing: it is an anonymous visitor everywhere.
        for (route, method), response in answers.items():
            if route in ANONYMOUS_ALLOWED or response.status_code == 405:
                continue
            walked = next(r for r in ROUTES if r.route == route)
            assert is_login_redirect(response, walked) or is_json_refusal(response), f"{method} {route}"
    if kind in NO_ROLE + ("inactive ops user",):
        # Nothing changed, nothing of partner A shown, no fleet figure served.
        assert AuditEntry.objects.count() == audit_before
        assert partner_a_state(partner_a) == state_before
        for (route, method), response in answers.items():
            body = response.content.decode(errors="replace")
            for secret in SECRET_PARTNER_TEXT:
                assert secret not in body, f"{method} {route} shows {secret!r} to a {kind}"
        for route in FLEET_JSON:
            response = answers[(route, "GET")]
            assert response.status_code in (302, 403), f"GET {route} to a {kind}: {response.status_code}"
        assert "Fleet CPU" not in answers[("", "GET")].content.decode()
        assert "chart-cpu" not in answers[("", "GET")].content.decode()
    if kind == "second manager of partner A":
        for route in PARTNER_SCOPED:
            response = answers[(route.route, "GET")]
            assert response.status_code in (200, 405) or back_to_its_page(response, "get"), (
                f"GET {route} to a co-manager"
            )
        for route in FLEET_JSON:
            assert answers[(route, "GET")].status_code == 200, route
    if kind == "ops and engineer":
        for route in ROUTES:
            response = answers[(route.route, "GET")]
            if route.route in ANONYMOUS_ALLOWED:
                continue
            assert response.status_code not in (403, 404) or route.is_admin, f"GET {route}: {response.status_code}"


def test_a_user_in_no_group_sees_no_fleet_alert_on_the_timeline(client, objects):
    """The walker's fixtures hold a firing fleet alert: a user with no role is shown none of it."""
    client.force_login(make_user("nina-no-group"))
    response = client.get("/api/charts/timeline")
    assert response.status_code == 403 and "no role" in response.json()["error"]
    assert "No role yet" in client.get("/").content.decode()
