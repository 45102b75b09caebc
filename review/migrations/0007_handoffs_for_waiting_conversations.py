from django.db import migrations


def open_handoffs_for_waiting_conversations(apps, schema_editor):
    """Conversations put in handoff before handoffs were rows: each waits for a person again, so the live
    page lists it and a trainer can take it over or hand it back (the assistant stays silent meanwhile)."""
    Conversation = apps.get_model("chat", "Conversation")
    Handoff = apps.get_model("review", "Handoff")
    waiting = Conversation.objects.filter(status="handoff").exclude(handoffs__status__in=["waiting", "taken"])
    Handoff.objects.bulk_create([
        Handoff(conversation_id=pk, reason="asked", requested_at=updated)
        for pk, updated in waiting.values_list("pk", "updated_at")
    ])


class Migration(migrations.Migration):

    dependencies = [
        ("review", "0006_hold_before_sending"),
        ("chat", "0005_hold_before_sending"),
    ]

    operations = [migrations.RunPython(open_handoffs_for_waiting_conversations, migrations.RunPython.noop)]
