# The visitor profile's fitness fields (goal, level, equipment, limits) and its list of stated
# facts become labelled facts, one row each; which labels exist is configuration (CHAT_PROFILE_CONFIG).

import django.db.models.deletion
import django.db.models.functions.text
from django.db import migrations, models
from django.db.models import OuterRef, Subquery

FIELDS = ("goal", "level", "equipment", "limits")
NOTE = "note"  # chat.memory.NOTE: a self-statement no configured label claims


def _facts_of(profile) -> list[tuple[str, str]]:
    facts = [(label, getattr(profile, label)[:300]) for label in FIELDS if getattr(profile, label).strip()]
    notes: dict[str, str] = {}
    for fact in profile.facts_old:
        if isinstance(fact, str) and fact.strip():
            notes.setdefault(fact[:300].upper(), fact[:300])  # the first of a repeat, as it was kept
    return facts + [(NOTE, fact) for fact in notes.values()]


def fields_to_facts(apps, schema_editor):
    VisitorProfile = apps.get_model("chat", "VisitorProfile")
    VisitorFact = apps.get_model("chat", "VisitorFact")
    rows = [
        VisitorFact(profile_id=profile.pk, label=label, value=value)
        for profile in VisitorProfile.objects.order_by("pk").iterator()
        for label, value in _facts_of(profile)
    ]
    VisitorFact.objects.bulk_create(rows, batch_size=1000)
    learned = VisitorProfile.objects.filter(pk=OuterRef("profile_id")).values("updated_at")[:1]
    VisitorFact.objects.update(created_at=Subquery(learned), updated_at=Subquery(learned))


def facts_to_fields(apps, schema_editor):
    VisitorProfile = apps.get_model("chat", "VisitorProfile")
    for profile in VisitorProfile.objects.prefetch_related("facts").iterator(chunk_size=1000):
        values: dict[str, list[str]] = {}
        for fact in profile.facts.order_by("created_at", "pk"):
            values.setdefault(fact.label if fact.label in FIELDS else NOTE, []).append(fact.value)
        for label in FIELDS:
            setattr(profile, label, "; ".join(values.get(label, []))[: 100 if label == "level" else 300])
        profile.facts_old = values.get(NOTE, [])
        profile.save(update_fields=[*FIELDS, "facts_old"])


class Migration(migrations.Migration):

    dependencies = [
        ('chat', '0003_message_approved_answer_message_context_tokens_and_more'),
    ]

    operations = [
        # Frees the name "facts" for the facts of the profile while the old list is converted.
        migrations.RenameField(model_name='visitorprofile', old_name='facts', new_name='facts_old'),
        migrations.CreateModel(
            name='VisitorFact',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('label', models.CharField(max_length=64)),
                ('value', models.CharField(max_length=300)),
                ('created_at', models.DateTimeField(auto_now_add=True, help_text='when it was learned')),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('message', models.ForeignKey(blank=True, help_text='the message it was picked from; empty: stated in the profile itself', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='chat.message')),
                ('profile', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='facts', to='chat.visitorprofile')),
            ],
            options={
                'ordering': ['created_at', 'id'],
                'constraints': [models.UniqueConstraint(models.F('profile'), models.F('label'), django.db.models.functions.text.Upper('value'), name='visitorfact_one_per_value')],
            },
        ),
        migrations.RunPython(fields_to_facts, facts_to_fields),
        migrations.RemoveField(model_name='visitorprofile', name='goal'),
        migrations.RemoveField(model_name='visitorprofile', name='level'),
        migrations.RemoveField(model_name='visitorprofile', name='equipment'),
        migrations.RemoveField(model_name='visitorprofile', name='limits'),
        migrations.RemoveField(model_name='visitorprofile', name='facts_old'),
        migrations.AlterField(
            model_name='cachecalibration',
            name='params',
            field=models.JSONField(help_text='chat.reuse.guard.GuardParams fields'),
        ),
    ]
