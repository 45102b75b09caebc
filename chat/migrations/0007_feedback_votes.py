import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("chat", "0006_roles")]

    operations = [
        migrations.CreateModel(
            name="CacheVote",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("visitor_id", models.CharField(max_length=64)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("entry", models.ForeignKey(
                    help_text="the entry the answer came from (an alias's original)",
                    on_delete=django.db.models.deletion.CASCADE, related_name="votes", to="chat.cacheentry")),
                ("feedback", models.OneToOneField(
                    on_delete=django.db.models.deletion.CASCADE, related_name="cache_vote", to="chat.feedback")),
            ],
            options={
                "indexes": [models.Index(fields=["visitor_id", "entry"], name="cachevote_visitor_entry")],
            },
        ),
    ]
