"""Changes that must never show half-done to a concurrent search: a document swap, a model switch."""

import threading
import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from knowledge import services
from knowledge.embeddings import embed_query
from knowledge.models import Chunk, ChunkEmbedding, EmbeddingSpace, Source
from knowledge.parsers import DocumentDraft
from knowledge.selectors import search

pytestmark = pytest.mark.django_db(transaction=True)


def in_thread(target):
    errors = []

    def run():
        try:
            target()
        except Exception as exc:  # surfaced by the test
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def version_draft(marker: str) -> DocumentDraft:
    paragraphs = [f"Paragraph {n} of the {marker} edition explains tempo and rest between sets." for n in range(6)]
    return DocumentDraft("guide", "Training guide", "\n\n".join(paragraphs))


def test_a_concurrent_reader_never_sees_a_document_half_indexed(settings):
    settings.KNOWLEDGE_CHUNK_TOKENS, settings.KNOWLEDGE_CHUNK_OVERLAP_TOKENS = 20, 0
    source = Source.objects.create(name="guides")
    services.documents_sync(source=source, drafts=[version_draft("alpha")])
    full = Chunk.objects.count()
    assert full == 6

    def swap_back_and_forth():
        for marker in ["bravo", "alpha"] * 4:
            services.documents_sync(source=source, drafts=[version_draft(marker)])

    thread, errors = in_thread(swap_back_and_forth)
    seen = set()
    while thread.is_alive():
        texts = list(Chunk.objects.filter(document__source=source).values_list("text", flat=True))
        editions = {"alpha" in t for t in texts}
        assert len(texts) == full and len(editions) == 1, texts  # all old or all new, never a mix or a gap
        seen |= editions
    thread.join()
    assert not errors and seen == {True, False}  # both editions were seen while swapping


def test_switching_the_embedding_model_rebuilds_beside_the_old_one_and_search_keeps_answering(
    settings, llm_server, exercise_drafts
):
    source = Source.objects.create(name="exercises")
    services.documents_sync(source=source, drafts=exercise_drafts)
    services.lexeme_stats_refresh()
    local = services.embedding_space_ensure()
    assert (local.backend, local.dimensions) == ("local", 384)

    settings.EMBEDDING_BACKEND, settings.EMBEDDING_MODEL = "openai", "text-embedding-3-small"
    settings.EMBEDDING_DIMENSIONS = 64
    settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = llm_server.base_url, "test"
    building = services.embedding_model_sync()
    assert (building.status, building.dimensions) == ("building", 64)
    # A document written during the build is embedded into both spaces.
    crawl = DocumentDraft("x", "Bear Crawl", "Crawl on all fours.")
    services.documents_sync(source=source, drafts=[*exercise_drafts, crawl])
    assert ChunkEmbedding.objects.filter(chunk__document__title="Bear Crawl").count() == 2

    def slow_build():
        services.space_build(space_id=building.pk, batch_size=2, progress=lambda done, total: time.sleep(0.05))

    thread, errors = in_thread(slow_build)
    answers = 0
    while thread.is_alive():
        hits = search(query="how do I hold a plank", vector=embed_query("how do I hold a plank"), k=3)
        assert hits and hits[0].title == "Plank"
        answers += 1
    thread.join()
    assert not errors and answers > 3

    building.refresh_from_db()
    local.refresh_from_db()
    assert (building.status, local.status) == ("active", "retired")
    vector = embed_query("how do I hold a plank")
    assert (vector.space_id, vector.dimensions) == (building.pk, 64)
    assert search(query="how do I hold a plank", vector=vector, k=3)[0].title == "Plank"
    services.space_retire(space=local)
    assert not connection.introspection.get_constraints(connection.cursor(), "knowledge_chunkembedding").get(
        local.index_name
    )
    assert not ChunkEmbedding.objects.filter(space=local).exists()
    assert ChunkEmbedding.objects.filter(space=building).count() == Chunk.objects.count()
    assert EmbeddingSpace.objects.filter(status="active").count() == 1


def test_a_model_that_ignores_the_configured_size_is_refused_before_anything_is_stored(settings, llm_server):
    settings.EMBEDDING_BACKEND, settings.EMBEDDING_MODEL, settings.EMBEDDING_DIMENSIONS = "openai", "old-model", 64
    settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = llm_server.base_url, "test"
    source = Source.objects.create(name="s")
    with pytest.raises(ImproperlyConfigured, match="returned 384-dimensional vectors, not 64"):
        services.documents_sync(source=source, drafts=[DocumentDraft("x", "Plank", "Hold a straight line.")])
    assert not Chunk.objects.exists()
