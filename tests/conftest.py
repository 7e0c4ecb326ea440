"""The base set of users every view test uses, built inline, and small factories."""

import os

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection

from dashboard.roles import ENGINEERS_GROUP, OPS_GROUP
from partners import changes
from partners.models import Partner, Priority

PASSWORD = "a-long-test-password"


def make_user(username: str, group: str | None = None, **extra):
    user = get_user_model().objects.create_user(username, f"{username}@example.org", PASSWORD, **extra)
    if group:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


def make_partner(name: str, actor, managers=(), **fields) -> Partner:
    slug = fields.pop("slug", name.lower().replace(" ", "-"))
    values = {"name": name, "slug": slug, "client_id": fields.pop("client_id", f"{slug}-client"),
              "priority": fields.pop("priority", Priority.BULK), **fields}
    return changes.create_partner(actor, values, list(managers), "test setup")


@pytest.fixture
def ops_user(db):
    return make_user("olivia-ops", OPS_GROUP, is_staff=True)


@pytest.fixture
def manager_a(db):
    return make_user("mara-manager-a")


@pytest.fixture
def manager_b(db):
    return make_user("bert-manager-b")


@pytest.fixture
def engineer(db):
    return make_user("erin-engineer", ENGINEERS_GROUP)


@pytest.fixture
def partner_a(ops_user, manager_a):
    """TheirStory: managed by manager A, with ceilings."""
    return make_partner(
        "TheirStory", ops_user, [manager_a], slug="theirstory", client_id="theirstory-sdk",
        ceiling_requests_per_minute=300, ceiling_burst=50, ceiling_max_concurrent_uploads=40,
        ceiling_max_bytes_in_flight=100 * 10**9, ceiling_daily_upload_bytes=10 * 10**12,
        requests_per_minute=120, burst=20, max_concurrent_uploads=16,
        max_bytes_in_flight=40 * 10**9, daily_upload_bytes=4 * 10**12,
    )


@pytest.fixture
def partner_b(ops_user, manager_b):
    return make_partner("Family Archive", ops_user, [manager_b], slug="family-archive",
                        client_id="fas-importer", max_concurrent_uploads=8)


@pytest.fixture
def login(client):
    def log_in_as(user):
        if user is not None:
            client.force_login(user)
        return client
    return log_in_as


def on_postgres() -> bool:
    return connection.vendor == "postgresql"


postgres_only = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith(("postgres", "pgsql")),
    reason="needs PostgreSQL: set DATABASE_URL (.ci/run runs the suite on both databases)",
)
