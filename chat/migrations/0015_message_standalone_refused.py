from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("chat", "0014_roles_privacy")]

    operations = [
        migrations.AddField(
            model_name="message",
            name="standalone_query",
            field=models.TextField(
                blank=True,
                help_text="a follow-up as search and reuse read it, made to stand alone from the conversation",
            ),
        ),
        migrations.AddField(
            model_name="message",
            name="refused",
            field=models.BooleanField(
                default=False, help_text="the safety policy's fixed sentence: never approved, cached or reused"
            ),
        ),
    ]
