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
            name='ScalingGroup',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.SlugField(help_text='How the dashboard names the group.', max_length=100, unique=True)),
                ('backend', models.CharField(choices=[('aws', 'AWS Auto Scaling group'), ('local', 'Local simulated fleet')], default='local', max_length=8)),
                ('aws_group_name', models.CharField(blank=True, help_text="The Auto Scaling group's name (AWS backend only).", max_length=255, verbose_name='AWS group name')),
                ('server_name_prefix', models.CharField(blank=True, help_text='Local backend: upload servers whose names start with this belong to the group (empty: every upload server).', max_length=100)),
                ('min_capacity', models.PositiveIntegerField(default=1)),
                ('max_capacity', models.PositiveIntegerField(default=10)),
                ('cooldown_seconds', models.PositiveIntegerField(default=300, help_text='After a scaling, the next one waits this long.')),
                ('desired_capacity', models.PositiveIntegerField(default=2)),
                ('last_scaled_at', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'ordering': ['name'],
                'constraints': [models.CheckConstraint(condition=models.Q(('min_capacity__lte', models.F('max_capacity'))), name='scaling_group_min_le_max', violation_error_message='The minimum must not be above the maximum.'), models.CheckConstraint(condition=models.Q(models.Q(('backend', 'aws'), _negated=True), models.Q(('aws_group_name', ''), _negated=True), _connector='OR'), name='scaling_group_aws_needs_name', violation_error_message='An AWS group needs the AWS group name.')],
            },
        ),
        migrations.CreateModel(
            name='ScalingAction',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('requested_by_name', models.CharField(help_text='“policy” for automatic actions.', max_length=150)),
                ('from_capacity', models.PositiveIntegerField()),
                ('to_capacity', models.PositiveIntegerField()),
                ('reason', models.TextField()),
                ('idempotency_key', models.UUIDField(unique=True)),
                ('status', models.CharField(choices=[('requested', 'Requested'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('refused', 'Refused')], default='requested', max_length=12)),
                ('message', models.TextField(blank=True, help_text='Why it failed or was refused, in words.')),
                ('requested_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ('started_at', models.DateTimeField(blank=True, null=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('requested_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('group', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='actions', to='fleet.scalinggroup')),
            ],
            options={
                'ordering': ['-requested_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='ScalingPolicy',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('enabled', models.BooleanField(default=False)),
                ('target_cpu_percent', models.FloatField(default=60, validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(100)], verbose_name='target CPU %')),
                ('tolerance_percent', models.FloatField(default=10, help_text='No action while CPU is within this many percent (relative) of the target.', validators=[django.core.validators.MinValueValidator(0), django.core.validators.MaxValueValidator(50)], verbose_name='tolerance %')),
                ('evaluation_minutes', models.PositiveIntegerField(default=3, help_text='Scale out on the CPU averaged over this many minutes.', validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(30)])),
                ('stabilization_minutes', models.PositiveIntegerField(default=10, help_text='Scale in only after CPU has stayed low for this many minutes.', validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(120)])),
                ('max_step', models.PositiveIntegerField(default=3, help_text='At most this many servers per action.', validators=[django.core.validators.MinValueValidator(1)])),
                ('never_scale_in', models.BooleanField(default=False)),
                ('max_data_age_minutes', models.PositiveIntegerField(default=5, help_text='No CPU sample this recent: no action.', validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(60)])),
                ('group', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='policy', to='fleet.scalinggroup')),
            ],
            options={
                'verbose_name_plural': 'scaling policies',
            },
        ),
        migrations.CreateModel(
            name='PolicyDecision',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('evaluated_minute', models.DateTimeField()),
                ('outcome', models.CharField(choices=[('scale_out', 'Scale out'), ('scale_in', 'Scale in'), ('hold', 'No change'), ('no_data', 'No data, no action'), ('error', 'Error, no action')], max_length=10)),
                ('cpu_percent', models.FloatField(blank=True, null=True)),
                ('from_capacity', models.PositiveIntegerField(blank=True, null=True)),
                ('to_capacity', models.PositiveIntegerField(blank=True, null=True)),
                ('reason', models.TextField()),
                ('action', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='decision', to='fleet.scalingaction')),
                ('group', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='decisions', to='fleet.scalinggroup')),
            ],
            options={
                'ordering': ['-evaluated_minute', '-id'],
                'constraints': [models.UniqueConstraint(fields=('group', 'evaluated_minute'), name='policy_decision_once_per_minute')],
            },
        ),
    ]
