from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("review", "0008_new_topic_reason")]

    operations: list = []
