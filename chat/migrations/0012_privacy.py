import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

REQUESTERS = [("visitor", "the visitor"), ("staff", "a staff user"),
              ("retention", "the retention job (RETENTION_DAYS)")]


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0011_safety"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ErasureRecord",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("visitor_hash", models.CharField(
                    blank=True, db_index=True, max_length=64,
                    help_text="sha256 of the visitor id; empty for a retention run")),
                ("requested_by", models.CharField(choices=REQUESTERS, max_length=16)),
                ("at", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ("counts", models.JSONField(
                    blank=True, default=dict, help_text="rows deleted per kind, Redis keys included")),
                ("staff_user", models.ForeignKey(
                    blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+",
                    to=settings.AUTH_USER_MODEL, help_text="who ran it from admin")),
            ],
            options={
                "ordering": ["-at", "-pk"],
                "permissions": [("export_visitor_data", "Can export a visitor's data"),
                                ("erase_visitor_data", "Can erase a visitor's data")],
            },
        ),
    ]
