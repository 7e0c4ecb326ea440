"""What every page sends: a Content-Security-Policy that runs no inline script, no caching of a
logged-in user's pages, and a session that ends when left idle."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.sessions.models import Session
from django.urls import reverse
from django.utils import timezone

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
# Emails are read in mail clients, not served under the page's policy.
PAGE_TEMPLATES = [path for path in TEMPLATES.rglob("*.html") if "emails" not in path.parts]


def csp_directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}


@pytest.mark.parametrize("url", ["/", "/partners/", "/admin/", "/audit/"])
def test_every_page_forbids_inline_and_foreign_scripts(login, ops_user, url):
    response = login(ops_user).get(url)
    assert response.status_code == 200
    directives = csp_directives(response)
    assert directives["script-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"] and directives["frame-ancestors"] == ["'none'"]
    assert directives["default-src"] == ["'self'"]


def test_the_login_page_has_the_policy_too(client):
    assert csp_directives(client.get(reverse("login")))["script-src"] == ["'self'"]


def test_no_page_template_has_an_inline_script_or_handler():
    offenders = []
    for path in PAGE_TEMPLATES:
        text = path.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            if "src=" not in tag:
                offenders.append(f"{path.relative_to(TEMPLATES)}: {tag}")
        offenders += [f"{path.relative_to(TEMPLATES)}: {m}" for m in re.findall(r"\son[a-z]+\s*=", text)]
        offenders += [f"{path.relative_to(TEMPLATES)}: {m}" for m in re.findall(r"javascript:", text)]
    assert PAGE_TEMPLATES and not offenders, offenders


@pytest.mark.parametrize("url", ["/", "/partners/", "/api/fleet-status", "/api/charts/cpu", "/admin/"])
def test_a_logged_in_users_pages_are_not_cached(login, ops_user, url):
    response = login(ops_user).get(url)
    assert response.status_code == 200
    directives = {part.strip() for part in response["Cache-Control"].split(",")}
    assert {"private", "no-store"} <= directives


def test_the_session_ends_after_an_hour_idle_not_two_weeks(settings, login, ops_user):
    assert settings.SESSION_COOKIE_AGE == 3600
    client = login(ops_user)
    client.get("/")
    session = Session.objects.get()
    assert session.expire_date <= timezone.now() + timedelta(seconds=3600)
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    response = client.get("/partners/")
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_using_the_dashboard_moves_the_idle_timeout_on(login, ops_user):
    client = login(ops_user)
    client.get("/")
    soon = timezone.now() + timedelta(minutes=5)
    Session.objects.update(expire_date=soon)
    session = client.session
    session["_refreshed_at"] = 0  # last moved on long ago
    session.save()
    Session.objects.update(expire_date=soon)
    assert client.get("/partners/").status_code == 200
    assert Session.objects.get().expire_date > timezone.now() + timedelta(minutes=55)


def test_a_poll_within_the_minute_does_not_write_the_session(login, ops_user):
    client = login(ops_user)
    client.get("/")
    before = Session.objects.get().expire_date
    client.get("/api/fleet-status")
    assert Session.objects.get().expire_date == before
