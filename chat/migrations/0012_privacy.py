from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("chat", "0011_safety")]

    operations: list = []
