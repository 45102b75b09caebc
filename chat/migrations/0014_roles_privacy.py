from django.db import migrations

from chat.roles import permissions_create, roles_sync


class Migration(migrations.Migration):
    """Trainers answer visitors' data requests, operators set the safety policy and read the audit log: the
    roles again, now that those models exist."""

    dependencies = [("chat", "0013_pii"), ("auditlog", "0017_add_actor_email")]

    operations = [
        migrations.RunPython(permissions_create, migrations.RunPython.noop),
        migrations.RunPython(roles_sync, migrations.RunPython.noop),
    ]
