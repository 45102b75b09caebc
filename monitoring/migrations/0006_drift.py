import django.contrib.postgres.fields
import django.db.models.deletion
import pgvector.django.vector
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('monitoring', '0005_rollups'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='DriftCheck',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('question', 'questions (new and grouped)'), ('coverage', 'coverage (weak knowledge-base match)'), ('thumbs_down', 'thumbs-down rate'), ('approval', 'review approval rate'), ('confidence', 'confidence')], max_length=16)),
                ('window_start', models.DateTimeField()),
                ('window_end', models.DateTimeField(db_index=True)),
                ('reference_start', models.DateTimeField()),
                ('reference_end', models.DateTimeField()),
                ('window_count', models.PositiveIntegerField(help_text='answers (or review decisions) in the window')),
                ('reference_count', models.PositiveIntegerField(help_text='answers (or review decisions) in the reference')),
                ('value', models.FloatField(help_text="the window's measure, as a person reads it (a share, a count)")),
                ('reference_value', models.FloatField(help_text='the same measure over the reference window')),
                ('statistic', models.FloatField(help_text="the window's z-score against the reference")),
                ('evidence', models.FloatField(help_text='CUSUM of the z-scores up to this window')),
                ('threshold', models.FloatField(help_text='evidence at which the check alarms')),
                ('alarm', models.BooleanField(default=False)),
                ('details', models.JSONField(blank=True, default=dict)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'ordering': ['-window_end', 'kind'],
                'get_latest_by': 'window_end',
                'constraints': [models.UniqueConstraint(fields=('kind', 'window_start'), name='drift_check_one_per_window')],
            },
        ),
        migrations.CreateModel(
            name='TopicCluster',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('status', models.CharField(choices=[('emerging', 'Emerging'), ('sent_to_review', 'sent to the review queue'), ('kb_gap', 'knowledge-base gap'), ('dismissed', 'Dismissed')], default='emerging', max_length=16)),
                ('first_seen', models.DateTimeField()),
                ('last_seen', models.DateTimeField(db_index=True)),
                ('size', models.PositiveIntegerField(help_text='questions in it')),
                ('trend', models.JSONField(blank=True, default=list, help_text='[{window_end, size}] per check that saw it')),
                ('examples', models.JSONField(blank=True, default=list, help_text='questions nearest its centre')),
                ('message_ids', django.contrib.postgres.fields.ArrayField(base_field=models.UUIDField(), blank=True, default=list, size=None)),
                ('centroid', pgvector.django.vector.VectorField()),
                ('status_changed_at', models.DateTimeField(blank=True, null=True)),
                ('status_changed_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-last_seen', '-size'],
            },
        ),
    ]
