import django.core.validators
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='RollupWatermark',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('resolution_seconds', models.PositiveIntegerField(unique=True)),
                ('rolled_until', models.DateTimeField()),
            ],
        ),
        migrations.CreateModel(
            name='MetricSource',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('autoscaling_cpu', 'CloudWatch CPU of an Auto Scaling group'), ('sqs_queue', 'SQS queue depth')], max_length=32)),
                ('name', models.CharField(help_text='The Auto Scaling group name or the SQS queue name.', max_length=255)),
                ('enabled', models.BooleanField(default=True)),
                ('last_attempt_at', models.DateTimeField(blank=True, null=True)),
                ('last_success_at', models.DateTimeField(blank=True, null=True)),
                ('last_error', models.TextField(blank=True)),
                ('last_error_at', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'ordering': ['kind', 'name'],
                'constraints': [models.UniqueConstraint(fields=('kind', 'name'), name='metric_source_unique')],
            },
        ),
        migrations.CreateModel(
            name='Rollup',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('metric', models.CharField(max_length=40)),
                ('subject', models.CharField(max_length=255)),
                ('resolution_seconds', models.PositiveIntegerField()),
                ('bucket_start', models.DateTimeField()),
                ('sample_count', models.PositiveIntegerField()),
                ('total', models.FloatField()),
                ('minimum', models.FloatField()),
                ('maximum', models.FloatField()),
            ],
            options={
                'indexes': [models.Index(fields=['metric', 'resolution_seconds', 'bucket_start'], name='rollup_chart_idx')],
                'constraints': [models.UniqueConstraint(fields=('metric', 'subject', 'resolution_seconds', 'bucket_start'), name='rollup_unique_bucket')],
            },
        ),
        migrations.CreateModel(
            name='UploadServer',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=100, unique=True, validators=[django.core.validators.RegexValidator('^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$', 'Use letters, digits and . _ - (up to 100), as the server calls itself in its reports.')])),
                ('token_hash', models.CharField(editable=False, max_length=64, unique=True)),
                ('token_prefix', models.CharField(editable=False, max_length=8)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('revoked_at', models.DateTimeField(blank=True, null=True)),
                ('boot_id', models.CharField(blank=True, max_length=64)),
                ('last_sequence', models.BigIntegerField(blank=True, null=True)),
                ('last_seen_at', models.DateTimeField(blank=True, null=True)),
                ('silent_after', models.DateTimeField(blank=True, db_index=True, null=True)),
                ('report_interval_seconds', models.PositiveIntegerField(default=5)),
                ('last_cpu_percent', models.FloatField(blank=True, null=True)),
                ('last_config_version', models.BigIntegerField(blank=True, null=True)),
                ('last_uploads_in_progress', models.PositiveIntegerField(default=0)),
                ('last_bytes_in_flight', models.PositiveBigIntegerField(default=0)),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['name'],
            },
        ),
        migrations.CreateModel(
            name='ServerReport',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('sequence', models.BigIntegerField()),
                ('received_at', models.DateTimeField(db_index=True)),
                ('interval_seconds', models.PositiveIntegerField()),
                ('cpu_percent', models.FloatField()),
                ('config_version', models.BigIntegerField()),
                ('uploads_in_progress', models.PositiveIntegerField()),
                ('bytes_in_flight', models.PositiveBigIntegerField()),
                ('admitted', models.PositiveIntegerField()),
                ('throttled', models.PositiveIntegerField()),
                ('timed_out', models.PositiveIntegerField()),
                ('completed', models.PositiveIntegerField()),
                ('failed', models.PositiveIntegerField(default=0)),
                ('would_have_throttled', models.PositiveIntegerField(db_default=0, default=0)),
                ('clients', models.JSONField(default=dict)),
                ('server', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='reports', to='monitoring.uploadserver')),
            ],
            options={
                'indexes': [models.Index(fields=['server', 'received_at'], name='report_server_time_idx')],
            },
        ),
    ]
