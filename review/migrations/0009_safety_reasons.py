import django.contrib.postgres.fields
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("review", "0008_new_topic_reason")]

    operations = [
        migrations.AlterField(
            model_name="reviewitem",
            name="reasons",
            field=django.contrib.postgres.fields.ArrayField(base_field=models.CharField(choices=[("low_confidence", "low confidence"), ("no_kb_match", "no knowledge-base match"), ("thumbs_down", "thumbs down"), ("handoff", "asked for a human"), ("cache_near_miss", "near-miss of the cache"), ("repeated_question", "repeated unanswered question"), ("held", "held: the visitor waits"), ("new_topic", "new topic"), ("injection", "suspected prompt injection"), ("moderation", "flagged by moderation"), ("leak", "system prompt leaked")], max_length=32), blank=True, default=list, size=None),
        ),
    ]
