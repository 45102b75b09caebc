from django.db import migrations


def active_to_production(apps, schema_editor):
    """The version that was active becomes the one labelled `production`, recorded as a move."""
    PromptVersion = apps.get_model("experiments", "PromptVersion")
    PromptLabel = apps.get_model("experiments", "PromptLabel")
    PromptLabelMove = apps.get_model("experiments", "PromptLabelMove")
    for version in PromptVersion.objects.filter(is_active=True):
        PromptLabel.objects.create(prompt_name=version.name, label="production", version=version)
        PromptLabelMove.objects.create(prompt_name=version.name, label="production", to_version=version,
                                       reason="the active version when labels were introduced")


def production_to_active(apps, schema_editor):
    PromptVersion = apps.get_model("experiments", "PromptVersion")
    PromptLabel = apps.get_model("experiments", "PromptLabel")
    label = PromptLabel.objects.filter(label="production").order_by("-moved_at").first()
    if label is not None:
        PromptVersion.objects.filter(pk=label.version_id).update(is_active=True)


class Migration(migrations.Migration):
    """Its own transaction: the labels are written before the column they come from is dropped."""

    dependencies = [
        ("experiments", "0002_labels_and_experiments"),
    ]

    operations = [
        migrations.RunPython(active_to_production, production_to_active),
        migrations.RemoveConstraint(
            model_name='promptversion',
            name='one_active_prompt',
        ),
        migrations.RemoveField(
            model_name='promptversion',
            name='is_active',
        ),
    ]
