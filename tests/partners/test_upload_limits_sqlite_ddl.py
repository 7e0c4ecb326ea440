"""The SQLite DDL written in docs/shared-config-table.md is the one the migration creates."""

import re
import sqlite3
from pathlib import Path

from django.db import connections
from django.db.backends.sqlite3.base import DatabaseWrapper

from partners.models import UploadLimitRow

TABLE_DOC = Path(__file__).resolve().parents[2] / "docs" / "shared-config-table.md"


def documented_sqlite_ddl() -> str:
    text = TABLE_DOC.read_text()
    section = text[text.index("\nSQLite (Django's SQLite backend") :]
    return re.search(r"```sql\n(.*?)```", section, re.S).group(1)


def columns(conn: sqlite3.Connection) -> list[tuple]:
    return [
        (name, kind, notnull, pk)
        for _cid, name, kind, notnull, _default, pk in conn.execute("PRAGMA table_info(upload_limits)")
    ]


def test_the_documented_sqlite_ddl_matches_what_django_creates_on_sqlite(tmp_path, django_db_blocker):
    documented = sqlite3.connect(":memory:")
    documented.executescript(documented_sqlite_ddl())
    wrapper = DatabaseWrapper(
        {
            **connections["default"].settings_dict,
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(tmp_path / "django.sqlite3"),
            "OPTIONS": {},
        }
    )
    # A throwaway SQLite file of its own, not the test database.
    with django_db_blocker.unblock(), wrapper.schema_editor() as editor:
        editor.create_model(UploadLimitRow)
    created = sqlite3.connect(tmp_path / "django.sqlite3")
    assert columns(documented) == columns(created)
    index = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'upload_limits' AND sql IS NOT NULL"
    assert documented.execute(index).fetchall() == created.execute(index).fetchall()
    with django_db_blocker.unblock():
        wrapper.close()
