from django.db import migrations

from chat.roles import permissions_create, roles_sync


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0005_hold_before_sending"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("knowledge", "0005_space_index_expression"),
        ("experiments", "0005_arm_generation_settings"),
        ("review", "0008_new_topic_reason"),
        ("monitoring", "0007_alerts"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(permissions_create, migrations.RunPython.noop),
        migrations.RunPython(roles_sync, migrations.RunPython.noop),
    ]
