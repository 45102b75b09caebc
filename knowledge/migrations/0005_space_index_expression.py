from django.db import migrations


def recreate_space_indexes(apps, schema_editor):
    """Space indexes built on a bare cast are rebuilt on the CASE expression the queries now use."""
    from knowledge.models import vector_expression

    EmbeddingSpace = apps.get_model("knowledge", "EmbeddingSpace")
    for space in EmbeddingSpace.objects.exclude(status="retired"):
        name = f"chunk_embedding_hnsw_s{space.pk}"
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")
        schema_editor.execute(
            f"CREATE INDEX {name} ON knowledge_chunkembedding USING hnsw "
            f"({vector_expression(space.pk, space.dimensions)} vector_cosine_ops) WHERE space_id = {space.pk}"
        )


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0004_lexeme_statistics")]
    operations = [migrations.RunPython(recreate_space_indexes, migrations.RunPython.noop)]
