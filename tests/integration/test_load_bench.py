"""bench/load.py's machinery in a tiny mode against a live server: every kind of request is
made (report posts, dashboard chart polls, staff edits through the real forms) and none fails."""

from urllib.parse import urlparse

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from bench import load
from core.models import AuditEntry
from monitoring import servers
from partners.models import Partner


@pytest.fixture
def demo_fleet(transactional_db):
    call_command("seed_demo")
    ops = get_user_model().objects.get(username="ops")
    tokens = {f"upload-{i}": servers.register_server(ops, f"upload-{i}", "load test")[1] for i in range(5)}
    return tokens, sorted(Partner.objects.values_list("slug", flat=True))


def test_tiny_load_makes_every_kind_of_request_without_errors(live_server, demo_fleet):
    tokens, slugs = demo_fleet
    audit_entries_before = AuditEntry.objects.count()
    port = urlparse(live_server.url).port

    # A tenth of the expected load: 5 servers, 2 dashboards, at least one staff edit.
    results, wall_seconds = load.run_load(
        port, tokens, slugs, scale=0.1, seconds=6, edits_per_minute=load.EXPECTED_EDITS_PER_MINUTE * 0.1, pool_threads=4
    )
    rows = load.summarize(results, wall_seconds)

    assert {kind: rows[kind]["first_errors"] for kind in load.KINDS} == {kind: [] for kind in load.KINDS}
    assert all(rows[kind]["requests"] > 0 for kind in load.KINDS), rows
    assert rows["overall"]["errors"] == 0
    # The edit went through the form to the audit log, as a person's would.
    assert AuditEntry.objects.count() > audit_entries_before
