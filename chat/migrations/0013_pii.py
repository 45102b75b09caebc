import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("chat", "0012_privacy")]

    operations = [
        migrations.CreateModel(
            name="SealedOriginal",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("token", models.TextField(
                    help_text="Fernet token of the original text (key: PII_KEY or derived from SECRET_KEY)")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("feedback", models.OneToOneField(
                    blank=True, null=True, on_delete=django.db.models.deletion.CASCADE,
                    related_name="sealed_original", to="chat.feedback")),
                ("message", models.OneToOneField(
                    blank=True, null=True, on_delete=django.db.models.deletion.CASCADE,
                    related_name="sealed_original", to="chat.message")),
            ],
            options={
                "permissions": [("view_pii", "Can see the personal data masked in visitors' messages and comments")],
                "constraints": [models.CheckConstraint(
                    condition=models.Q(models.Q(("feedback__isnull", True), ("message__isnull", False)),
                                       models.Q(("feedback__isnull", False), ("message__isnull", True)),
                                       _connector="OR"),
                    name="sealedoriginal_one_owner")],
            },
        ),
    ]
