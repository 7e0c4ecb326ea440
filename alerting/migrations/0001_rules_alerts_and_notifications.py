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
            name='AlertRule',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('slug', models.SlugField(max_length=60, unique=True)),
                ('name', models.CharField(max_length=120)),
                ('kind', models.CharField(choices=[('metric', 'Metric over a window'), ('server_silent', 'Upload server silent'), ('config_stale', 'Server behind the newest config version'), ('collector_failing', 'Metric collector failing')], default='metric', max_length=24)),
                ('metric', models.CharField(blank=True, choices=[('cpu_percent', 'CPU %'), ('uploads_in_progress', 'uploads in progress'), ('bytes_in_flight', 'bytes in flight'), ('admitted', 'admitted uploads per minute'), ('throttled', 'throttled uploads per minute'), ('timed_out', 'timed-out uploads per minute'), ('failed', 'failed uploads per minute'), ('throttled_share', 'throttled share of requests (%)'), ('queue_visible', 'SQS messages waiting'), ('queue_in_flight', 'SQS messages in flight')], max_length=40)),
                ('subject', models.CharField(default='fleet', help_text='What to watch: "fleet", one series ("queue:Video") or every series of a kind ("server:*", "queue:*", "client:*"): one alert per subject.', max_length=255)),
                ('aggregation', models.CharField(choices=[('avg', 'average'), ('max', 'maximum'), ('min', 'minimum'), ('sum', 'sum')], default='avg', max_length=8)),
                ('window_seconds', models.PositiveIntegerField(default=60, help_text='Minute values aggregated, seconds.', validators=[django.core.validators.MinValueValidator(60)])),
                ('comparison', models.CharField(choices=[('gt', '>'), ('gte', '≥'), ('lt', '<'), ('lte', '≤')], default='gt', max_length=4)),
                ('threshold', models.FloatField(default=0)),
                ('for_seconds', models.PositiveIntegerField(default=120, help_text='The condition must hold this long before the alert fires.')),
                ('resolve_after_seconds', models.PositiveIntegerField(default=120, help_text='The condition must be false this long before the alert resolves.')),
                ('severity', models.CharField(choices=[('critical', 'Critical'), ('warning', 'Warning')], default='warning', max_length=10)),
                ('notify_engineers', models.BooleanField(default=True, help_text='Email every user in the engineers group.')),
                ('extra_recipients', models.TextField(blank=True, help_text='More addresses, one per line or comma-separated.')),
                ('runbook_url', models.URLField(blank=True)),
                ('repeat_interval_seconds', models.PositiveIntegerField(default=3600, help_text='Remind while firing and unacknowledged; 0 = never.')),
                ('enabled', models.BooleanField(default=True)),
                ('changed_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                'ordering': ['name'],
            },
        ),
        migrations.CreateModel(
            name='Alert',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('subject', models.CharField(max_length=255)),
                ('state', models.CharField(choices=[('ok', 'OK (never fired)'), ('pending', 'Pending'), ('firing', 'Firing'), ('resolved', 'Resolved')], default='pending', max_length=10)),
                ('value', models.FloatField(null=True)),
                ('threshold', models.FloatField(null=True)),
                ('pending_since', models.DateTimeField()),
                ('fired_at', models.DateTimeField(blank=True, db_index=True, null=True)),
                ('clear_since', models.DateTimeField(blank=True, null=True)),
                ('closed_at', models.DateTimeField(blank=True, db_index=True, null=True)),
                ('evaluated_at', models.DateTimeField()),
                ('notified_at', models.DateTimeField(blank=True, null=True)),
                ('resolved_notified', models.BooleanField(default=False)),
                ('acknowledged_at', models.DateTimeField(blank=True, null=True)),
                ('acknowledged_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('rule', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='alerts', to='alerting.alertrule')),
            ],
            options={
                'ordering': ['-pending_since', '-id'],
            },
        ),
        migrations.CreateModel(
            name='Notification',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('firing', 'Firing'), ('reminder', 'Reminder'), ('resolved', 'Resolved')], max_length=10)),
                ('recipients', models.JSONField(default=list)),
                ('attempt', models.PositiveSmallIntegerField(default=1)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('due_at', models.DateTimeField(db_index=True)),
                ('claimed_at', models.DateTimeField(blank=True, null=True)),
                ('sent_at', models.DateTimeField(blank=True, null=True)),
                ('error', models.TextField(blank=True)),
                ('permanent_failure', models.BooleanField(default=False)),
                ('alert', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='notifications', to='alerting.alert')),
            ],
            options={
                'ordering': ['-created_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='Silence',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('subject', models.CharField(blank=True, help_text='Empty: every subject of the rule.', max_length=255)),
                ('comment', models.TextField()),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('expires_at', models.DateTimeField()),
                ('created_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('expired_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('rule', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='silences', to='alerting.alertrule')),
            ],
            options={
                'ordering': ['-created_at'],
            },
        ),
        migrations.AddConstraint(
            model_name='alert',
            constraint=models.UniqueConstraint(condition=models.Q(('state__in', ['pending', 'firing'])), fields=('rule', 'subject'), name='alert_one_open_per_rule_subject'),
        ),
    ]
