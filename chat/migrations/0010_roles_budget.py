from django.db import migrations

from chat.roles import permissions_create, roles_sync


class Migration(migrations.Migration):
    """Operators set the LLM budget: the roles again, now that its model exists."""

    dependencies = [("chat", "0009_budgets")]

    operations = [
        migrations.RunPython(permissions_create, migrations.RunPython.noop),
        migrations.RunPython(roles_sync, migrations.RunPython.noop),
    ]
