import django.core.validators
import django.db.models.deletion
import django.db.models.functions.comparison
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
            name='ConfigVersion',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('value', models.BigIntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name='FleetSettings',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('requests_per_minute', models.PositiveIntegerField(blank=True, null=True, validators=[django.core.validators.MinValueValidator(1)], verbose_name='requests per minute')),
                ('burst', models.PositiveIntegerField(blank=True, help_text='Requests that may arrive at once above the rate.', null=True, validators=[django.core.validators.MinValueValidator(1)], verbose_name='burst')),
                ('max_concurrent_uploads', models.PositiveIntegerField(blank=True, null=True, validators=[django.core.validators.MinValueValidator(1)], verbose_name='concurrent uploads')),
                ('max_bytes_in_flight', models.PositiveBigIntegerField(blank=True, null=True, validators=[django.core.validators.MinValueValidator(1)], verbose_name='bytes in flight')),
                ('daily_upload_bytes', models.PositiveBigIntegerField(blank=True, null=True, validators=[django.core.validators.MinValueValidator(1)], verbose_name='upload bytes per day (UTC)')),
                ('revision', models.PositiveIntegerField(default=0)),
                ('changed_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('load_control_enabled', models.BooleanField(default=False, verbose_name='load-coupled limits on')),
                ('load_cpu_target_percent', models.FloatField(default=70.0, validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(100)], verbose_name='fleet CPU target %')),
                ('load_window_seconds', models.PositiveIntegerField(default=300, help_text='CPU must stay above (or below) the target this long before a step.', validators=[django.core.validators.MinValueValidator(60)], verbose_name='window (seconds)')),
                ('load_reserved_share_percent', models.FloatField(default=30.0, help_text="Of the fleet's capacity, kept for direct users and interactive partners.", validators=[django.core.validators.MinValueValidator(0), django.core.validators.MaxValueValidator(100)], verbose_name='reserved share %')),
                ('load_decrease_factor', models.FloatField(default=0.7, help_text='Effective limits are multiplied by this at each overloaded window.', validators=[django.core.validators.MinValueValidator(0.05), django.core.validators.MaxValueValidator(0.95)], verbose_name='decrease factor')),
                ('load_increase_step_percent', models.FloatField(default=10.0, help_text='Of the configured limit, added back at each quiet window.', validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(100)], verbose_name='increase step %')),
                ('load_server_upload_capacity', models.PositiveIntegerField(default=80, help_text='Concurrent uploads one upload server carries at full CPU; sizes the reserved share.', validators=[django.core.validators.MinValueValidator(1)], verbose_name='uploads one server carries')),
                ('changed_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'fleet settings',
                'verbose_name_plural': 'fleet settings',
            },
        ),
        migrations.CreateModel(
            name='Partner',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('requests_per_minute', models.PositiveIntegerField(blank=True, null=True, validators=[django.core.validators.MinValueValidator(1)], verbose_name='requests per minute')),
                ('burst', models.PositiveIntegerField(blank=True, help_text='Requests that may arrive at once above the rate.', null=True, validators=[django.core.validators.MinValueValidator(1)], verbose_name='burst')),
                ('max_concurrent_uploads', models.PositiveIntegerField(blank=True, null=True, validators=[django.core.validators.MinValueValidator(1)], verbose_name='concurrent uploads')),
                ('max_bytes_in_flight', models.PositiveBigIntegerField(blank=True, null=True, validators=[django.core.validators.MinValueValidator(1)], verbose_name='bytes in flight')),
                ('daily_upload_bytes', models.PositiveBigIntegerField(blank=True, null=True, validators=[django.core.validators.MinValueValidator(1)], verbose_name='upload bytes per day (UTC)')),
                ('name', models.CharField(max_length=120, unique=True)),
                ('slug', models.SlugField(max_length=60, unique=True)),
                ('client_id', models.CharField(max_length=255, unique=True, validators=[django.core.validators.RegexValidator('^[A-Za-z0-9][A-Za-z0-9._:@-]{0,254}$', "Use letters, digits and . _ : @ - (up to 255), starting with a letter or digit, exactly as the partner's OAuth client id.")], verbose_name='OAuth client id')),
                ('contact_email', models.EmailField(blank=True, max_length=254)),
                ('priority', models.CharField(choices=[('interactive', 'Interactive'), ('bulk', 'Bulk')], default='bulk', max_length=16)),
                ('ceiling_requests_per_minute', models.PositiveIntegerField(blank=True, null=True, validators=[django.core.validators.MinValueValidator(1)], verbose_name='ceiling: requests per minute')),
                ('ceiling_burst', models.PositiveIntegerField(blank=True, null=True, validators=[django.core.validators.MinValueValidator(1)], verbose_name='ceiling: burst')),
                ('ceiling_max_concurrent_uploads', models.PositiveIntegerField(blank=True, null=True, validators=[django.core.validators.MinValueValidator(1)], verbose_name='ceiling: concurrent uploads')),
                ('ceiling_max_bytes_in_flight', models.PositiveBigIntegerField(blank=True, null=True, validators=[django.core.validators.MinValueValidator(1)], verbose_name='ceiling: bytes in flight')),
                ('ceiling_daily_upload_bytes', models.PositiveBigIntegerField(blank=True, null=True, validators=[django.core.validators.MinValueValidator(1)], verbose_name='ceiling: upload bytes per day')),
                ('shadow_requests_per_minute', models.PositiveIntegerField(blank=True, null=True, validators=[django.core.validators.MinValueValidator(1)], verbose_name='shadow: requests per minute')),
                ('shadow_burst', models.PositiveIntegerField(blank=True, null=True, validators=[django.core.validators.MinValueValidator(1)], verbose_name='shadow: burst')),
                ('shadow_max_concurrent_uploads', models.PositiveIntegerField(blank=True, null=True, validators=[django.core.validators.MinValueValidator(1)], verbose_name='shadow: concurrent uploads')),
                ('shadow_max_bytes_in_flight', models.PositiveBigIntegerField(blank=True, null=True, validators=[django.core.validators.MinValueValidator(1)], verbose_name='shadow: bytes in flight')),
                ('shadow_daily_upload_bytes', models.PositiveBigIntegerField(blank=True, null=True, validators=[django.core.validators.MinValueValidator(1)], verbose_name='shadow: upload bytes per day (UTC)')),
                ('revision', models.PositiveIntegerField(default=0)),
                ('changed_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('effective_max_concurrent_uploads', models.PositiveIntegerField(blank=True, null=True)),
                ('effective_max_bytes_in_flight', models.PositiveBigIntegerField(blank=True, null=True)),
                ('effective_reason', models.TextField(blank=True)),
                ('effective_changed_at', models.DateTimeField(blank=True, null=True)),
                ('changed_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('managers', models.ManyToManyField(blank=True, related_name='managed_partners', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['name'],
            },
        ),
        migrations.CreateModel(
            name='UploadLimitRow',
            fields=[
                ('client_id', models.CharField(max_length=255, primary_key=True, serialize=False)),
                ('requests_per_minute', models.IntegerField(null=True)),
                ('burst', models.IntegerField(null=True)),
                ('max_concurrent_uploads', models.IntegerField(null=True)),
                ('max_bytes_in_flight', models.BigIntegerField(null=True)),
                ('daily_upload_bytes', models.BigIntegerField(null=True)),
                ('paused', models.BooleanField(default=False)),
                ('pause_reason', models.TextField(default='')),
                ('resume_at', models.DateTimeField(null=True)),
                ('priority', models.CharField(max_length=16)),
                ('version', models.BigIntegerField()),
                ('updated_at', models.DateTimeField()),
                ('all_partners_paused', models.BooleanField(default=False)),
                ('all_partners_pause_reason', models.TextField(default='')),
                ('all_partners_resume_at', models.DateTimeField(null=True)),
                ('live_server_count', models.IntegerField(default=1)),
                ('shadow_requests_per_minute', models.IntegerField(null=True)),
                ('shadow_burst', models.IntegerField(null=True)),
                ('shadow_max_concurrent_uploads', models.IntegerField(null=True)),
                ('shadow_max_bytes_in_flight', models.BigIntegerField(null=True)),
                ('shadow_daily_upload_bytes', models.BigIntegerField(null=True)),
                ('reduced_limits', models.TextField(null=True)),
            ],
            options={
                'db_table': 'upload_limits',
                'indexes': [models.Index(fields=['version'], name='upload_limits_version_idx')],
            },
        ),
        migrations.CreateModel(
            name='Override',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('pause', 'Pause'), ('limits', 'Temporary limits')], max_length=8)),
                ('values', models.JSONField(blank=True, default=dict, help_text='Limits applied: field → value.')),
                ('replaced', models.JSONField(blank=True, default=dict, help_text='What they replaced; restored at the end.')),
                ('reason', models.TextField()),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('ends_at', models.DateTimeField(blank=True, db_index=True, null=True)),
                ('state', models.CharField(choices=[('active', 'Active'), ('expired', 'Ended at its end time'), ('ended_early', 'Ended by hand')], default='active', max_length=12)),
                ('ended_at', models.DateTimeField(blank=True, null=True)),
                ('reminder_due_at', models.DateTimeField(blank=True, null=True)),
                ('reminder_claimed_at', models.DateTimeField(blank=True, null=True)),
                ('reminder_sent_at', models.DateTimeField(blank=True, null=True)),
                ('reminder_error', models.TextField(blank=True)),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('ended_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('partner', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='overrides', to='partners.partner')),
            ],
            options={
                'ordering': ['ends_at', 'id'],
                'constraints': [models.UniqueConstraint(django.db.models.functions.comparison.Coalesce('partner', models.Value(0)), condition=models.Q(('kind', 'pause'), ('state', 'active')), name='override_one_active_pause'), models.CheckConstraint(condition=models.Q(('kind', 'pause'), models.Q(('partner__isnull', False), ('ends_at__isnull', False)), _connector='OR'), name='override_limits_of_a_partner_with_an_end')],
            },
        ),
    ]
