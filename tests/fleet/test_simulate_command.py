"""`manage.py simulate` runs a scenario against the limits in force now."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from partners import changes


def run(*args) -> str:
    out = StringIO()
    call_command("simulate", *args, stdout=out)
    return out.getvalue()


def test_it_runs_a_scenario_against_todays_limits(ops_user, partner_a):
    loose = run("--scenario", "theirstory-backlog", "--servers", "1", "--hours", "0.25")
    changes.change_limits(partner_a, ops_user, {"max_concurrent_uploads": 2}, "tighten", None)
    limited = run("--scenario", "theirstory-backlog", "--servers", "1", "--hours", "0.25")
    assert "limits in force, 1 server" in limited
    assert loose != limited, "the partner's limit in the table changes what happens"


def test_it_refuses_zero_servers(db):
    with pytest.raises(CommandError):
        run("--servers", "0", "--hours", "0.01")
