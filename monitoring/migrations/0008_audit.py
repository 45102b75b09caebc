from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0007_alerts")]

    operations: list = []
