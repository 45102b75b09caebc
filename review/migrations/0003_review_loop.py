import django.contrib.postgres.fields
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models
from django.db.models import F

# The reason texts queued before reasons became codes.
REASON_CODES = {"low confidence": "low_confidence", "thumbs down": "thumbs_down"}


def fill_reasons_and_learning_value(apps, schema_editor):
    ReviewItem = apps.get_model("review", "ReviewItem")
    ReviewItem.objects.update(learning_value=F("priority"))
    for text in ReviewItem.objects.exclude(reason="").values_list("reason", flat=True).distinct():
        code = REASON_CODES.get(text, text.strip().lower().replace(" ", "_")[:32])
        ReviewItem.objects.filter(reason=text).update(reasons=[code])


class Migration(migrations.Migration):

    dependencies = [
        ('review', '0002_approvedanswer'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RenameField(model_name='reviewitem', old_name='reviewed_by', new_name='decided_by'),
        migrations.RenameField(model_name='reviewitem', old_name='reviewed_at', new_name='decided_at'),
        migrations.AlterField(
            model_name='reviewitem',
            name='decided_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='reviewitem',
            name='claimed_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='reviewitem',
            name='claimed_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='reviewitem',
            name='skip_count',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='reviewitem',
            name='reasons',
            field=django.contrib.postgres.fields.ArrayField(base_field=models.CharField(choices=[('low_confidence', 'low confidence'), ('no_kb_match', 'no knowledge-base match'), ('thumbs_down', 'thumbs down'), ('handoff', 'asked for a human'), ('cache_near_miss', 'near-miss of the cache'), ('repeated_question', 'repeated unanswered question')], max_length=32), blank=True, default=list, size=None),
        ),
        migrations.AddField(
            model_name='reviewitem',
            name='feedback_reason',
            field=models.CharField(blank=True, help_text="the visitor's thumbs-down reason", max_length=200),
        ),
        migrations.AddField(
            model_name='reviewitem',
            name='learning_value',
            field=models.FloatField(default=0.0, help_text='what a decision teaches (REVIEW_WEIGHTS)'),
        ),
        migrations.AlterField(
            model_name='reviewitem',
            name='priority',
            field=models.FloatField(help_text="the answer's uncertainty: 1 - confidence, never lowered"),
        ),
        migrations.AlterField(
            model_name='reviewitem',
            name='reason',
            field=models.CharField(help_text='the latest reason, as a trainer reads it', max_length=200),
        ),
        migrations.AlterField(
            model_name='reviewitem',
            name='status',
            field=models.CharField(choices=[('pending', 'Pending'), ('claimed', 'Claimed'), ('approved', 'Approved'), ('edited', 'edited and approved'), ('rejected', 'Rejected'), ('skipped', 'Skipped')], default='pending', max_length=16),
        ),
        migrations.RunPython(fill_reasons_and_learning_value, migrations.RunPython.noop),
        migrations.RemoveIndex(model_name='reviewitem', name='review_queue'),
        migrations.AlterModelOptions(name='reviewitem', options={'ordering': ['-learning_value', 'created_at']}),
        migrations.AddIndex(
            model_name='reviewitem',
            index=models.Index(fields=['status', '-learning_value'], name='review_queue'),
        ),
        migrations.CreateModel(
            name='ReviewDecision',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('action', models.CharField(choices=[('claim', 'Claim'), ('release', 'Release'), ('approve', 'Approve'), ('edit', 'edit and approve'), ('reject', 'Reject'), ('skip', 'Skip'), ('reopen', 'Reopen')], max_length=16)),
                ('at', models.DateTimeField(default=django.utils.timezone.now)),
                ('before', models.JSONField(blank=True, default=dict)),
                ('after', models.JSONField(blank=True, default=dict)),
                ('diff', models.TextField(blank=True, help_text='unified diff of an edited answer')),
                ('note', models.TextField(blank=True, help_text='why: the reject reason, the signal that reopened it')),
                ('item', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='decisions', to='review.reviewitem')),
                ('user', models.ForeignKey(blank=True, help_text="empty when a visitor's signal reopened the item", null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['at', 'pk'],
            },
        ),
        migrations.AddField(
            model_name='approvedanswer',
            name='review_item',
            field=models.ForeignKey(blank=True, help_text='the review it was approved in', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='approved_answers', to='review.reviewitem'),
        ),
        migrations.AddField(
            model_name='approvedanswer',
            name='original_answer',
            field=models.TextField(blank=True, help_text='the answer as given, when a trainer edited it'),
        ),
    ]
