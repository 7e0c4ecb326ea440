from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='WeeklySummary',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('week_start', models.DateField(help_text='The Monday (UTC) the summarised week starts.', unique=True)),
                ('claimed_at', models.DateTimeField()),
                ('sent_at', models.DateTimeField(blank=True, null=True)),
                ('recipients', models.JSONField(default=list)),
                ('error', models.TextField(blank=True)),
            ],
            options={
                'verbose_name_plural': 'weekly summaries',
                'ordering': ['-week_start'],
            },
        ),
    ]
