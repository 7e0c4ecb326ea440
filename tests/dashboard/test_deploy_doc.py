"""docs/deploy.md's read-only database user for the upload servers, run as written: it reads
upload_limits and hears its notifications, and can do nothing else."""

import re
import uuid

import psycopg
import pytest
from django.db import connection

from partners import changes
from tests.factories import REPO, postgres_only

pytestmark = [postgres_only, pytest.mark.django_db(transaction=True)]


def grants_sql(role: str) -> str:
    text = (REPO / "docs" / "deploy.md").read_text()
    section = text[text.index("### The upload servers' read-only user") :]
    sql = re.search(r"```sql\n(.*?)```", section, re.S).group(1)
    return sql.replace("upload_gate", role)


@pytest.fixture
def gate_dsn():
    """The doc's role, under a name of its own (roles belong to the whole PostgreSQL cluster)."""
    role = f"upload_gate_{uuid.uuid4().hex[:8]}"
    with connection.cursor() as cursor:
        cursor.execute(grants_sql(role))
    settings = connection.settings_dict
    dsn = f"host={settings['HOST']} port={settings['PORT']} dbname={settings['NAME']} user={role}"
    yield dsn
    with connection.cursor() as cursor:
        cursor.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")


def test_the_gates_user_reads_the_table_and_hears_each_change(gate_dsn, ops_user, partner_a):
    with psycopg.connect(gate_dsn, autocommit=True) as listener, psycopg.connect(gate_dsn) as reader:
        listener.execute("LISTEN upload_limits")
        changes.change_limits(partner_a, ops_user, {"max_concurrent_uploads": 6}, "deploy doc", None)
        [notification] = list(listener.notifies(timeout=5, stop_after=1))
        version = int(notification.payload)
        row = reader.execute(
            "SELECT max_concurrent_uploads, version FROM upload_limits WHERE client_id = %s", [partner_a.client_id]
        ).fetchone()
    assert row == (6, version)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE upload_limits SET max_concurrent_uploads = 1000",
        "DELETE FROM upload_limits",
        "SELECT count(*) FROM partners_partner",
        "SELECT count(*) FROM auth_user",
        "CREATE TABLE gate_scratch (id int)",
    ],
)
def test_the_gates_user_can_do_nothing_else(gate_dsn, partner_a, statement):
    with psycopg.connect(gate_dsn) as gate:
        with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.ReadOnlySqlTransaction)):
            gate.execute(statement)
