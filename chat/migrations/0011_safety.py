from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("chat", "0010_roles_budget")]

    operations: list = []
