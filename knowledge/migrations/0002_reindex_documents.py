from django.db import migrations


class Migration(migrations.Migration):
    """Chunks written before 0003 have neither full-text vectors nor an embedding space; dropping
    their documents makes the next ingest rewrite every one of them (their hashes are gone)."""

    dependencies = [("knowledge", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "DELETE FROM knowledge_chunk; DELETE FROM knowledge_document; UPDATE knowledge_source SET document_count = 0, chunk_count = 0",
            migrations.RunSQL.noop,
        ),
    ]
