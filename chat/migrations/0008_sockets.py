from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("chat", "0007_feedback_votes")]

    operations = []
