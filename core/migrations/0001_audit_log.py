"""The audit log, append-only in the database too (PostgreSQL), not only in the ORM.

A trigger refuses UPDATE, DELETE and TRUNCATE on the audit table, whoever sends them: a raw
SQL statement, a psql session, a bug. TRUNCATE alone may be let through by a session that
sets `upload_ops.allow_audit_truncate = on` on purpose: the test suite does (Django's flush
between transactional tests truncates every table); production never does. A database
superuser can still drop the trigger: keep the app's database role from owning the table
where that matters (docs/backup-restore.md).

SQLite has no equivalent worth the name; there the ORM's refusal (AuditEntryQuerySet) stays.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


FUNCTION = "core_auditentry_append_only"


def _table(apps) -> str:
    return apps.get_model("core", "AuditEntry")._meta.db_table


def add_trigger(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    table = _table(apps)
    schema_editor.execute(f"""
        CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'TRUNCATE' AND current_setting('upload_ops.allow_audit_truncate', true) = 'on' THEN
                RETURN NULL;
            END IF;
            RAISE EXCEPTION 'the audit log is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
        END
        $$;
        CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION {FUNCTION}();
        CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}();
    """, params=None)


def remove_trigger(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    table = _table(apps)
    schema_editor.execute(f"""
        DROP TRIGGER IF EXISTS {table}_no_update_delete ON {table};
        DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};
        DROP FUNCTION IF EXISTS {FUNCTION}();
    """, params=None)


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='AuditEntry',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ('actor_name', models.CharField(help_text='“system” for automatic changes.', max_length=150)),
                ('action', models.CharField(db_index=True, max_length=40)),
                ('target_id', models.PositiveBigIntegerField(blank=True, null=True)),
                ('subject', models.CharField(max_length=200)),
                ('before', models.JSONField(blank=True, default=dict)),
                ('after', models.JSONField(blank=True, default=dict)),
                ('reason', models.TextField(blank=True)),
                ('actor', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('target_type', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='contenttypes.contenttype')),
            ],
            options={
                'verbose_name_plural': 'audit entries',
                'ordering': ['-created_at', '-id'],
                'indexes': [models.Index(fields=['target_type', 'target_id', 'created_at'], name='audit_target_idx')],
            },
        ),
        migrations.RunPython(add_trigger, remove_trigger),
    ]
