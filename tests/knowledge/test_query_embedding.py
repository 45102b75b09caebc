import asyncio
import threading

import pytest
from channels.db import database_sync_to_async as in_db

from knowledge import embeddings
from knowledge.embeddings import NoActiveSpace, aembed_query, embed_query
from knowledge.services import embedding_space_ensure

# The model runs on a worker thread, which reads the active space with its own connection.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _active_space(transactional_db):
    embedding_space_ensure()


async def embed_query_async(text):
    return await aembed_query(text)


async def test_questions_asked_while_the_model_is_busy_are_embedded_together_each_with_its_own_vector(
    monkeypatch,
):
    questions = ["How do I do a barbell squat?", "What muscles does the plank work?", "Any tips for lunges?"]
    alone = await in_db(lambda: {q: embed_query(q).vector for q in ["Warm-up first", *questions]})()
    real_model = embeddings.embed_texts
    busy, release, batches = threading.Event(), threading.Event(), []

    def model(texts, spec=None):
        batches.append(list(texts))
        busy.set()
        release.wait(5)  # the first forward pass runs until every other question has arrived
        return real_model(texts, spec)

    monkeypatch.setattr(embeddings, "embed_texts", model)
    first = asyncio.ensure_future(embed_query_async("Warm-up first"))
    assert await asyncio.to_thread(busy.wait, 5)
    others = [asyncio.ensure_future(embed_query_async(q)) for q in questions]
    await asyncio.sleep(0.05)  # asked while the model is busy
    release.set()
    vectors = await asyncio.gather(first, *others)

    assert batches == [["Warm-up first"], questions]  # one forward pass for the three that waited
    for question, vector in zip(["Warm-up first", *questions], vectors, strict=True):
        assert vector.vector == pytest.approx(alone[question], abs=1e-5)


async def test_a_failed_forward_pass_fails_every_question_in_it_and_the_next_question_is_embedded(monkeypatch):
    await in_db(embed_query)("warm the active space")
    real_model = embeddings.embed_texts
    calls = []

    def failing_once(texts, spec=None):
        calls.append(texts)
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return real_model(texts, spec)

    monkeypatch.setattr(embeddings, "embed_texts", failing_once)
    with pytest.raises(RuntimeError, match="out of memory"):
        await embed_query_async("How do I do a barbell squat?")
    assert len((await embed_query_async("How do I do a barbell squat?")).vector) == 384


async def test_a_question_abandoned_while_it_waits_for_the_model_is_left_out_of_the_next_pass(monkeypatch):
    await in_db(embed_query)("warm the active space")
    real_model = embeddings.embed_texts
    busy, release, batches = threading.Event(), threading.Event(), []

    def model(texts, spec=None):
        batches.append(list(texts))
        busy.set()
        release.wait(5)
        return real_model(texts, spec)

    monkeypatch.setattr(embeddings, "embed_texts", model)
    first = asyncio.ensure_future(aembed_query("Warm-up first"))
    assert await asyncio.to_thread(busy.wait, 5)
    abandoned = asyncio.ensure_future(aembed_query("Never mind"))
    kept = asyncio.ensure_future(aembed_query("Any tips for lunges?"))
    await asyncio.sleep(0.05)  # both wait for the model
    abandoned.cancel()  # the visitor's turn went away before the model got to it
    release.set()
    assert len((await kept).vector) == 384
    assert first.done() and batches == [["Warm-up first"], ["Any tips for lunges?"]]


async def test_reading_the_active_space_never_creates_one(transactional_db):
    from knowledge.embeddings import forget_active_space
    from knowledge.models import EmbeddingSpace

    await in_db(EmbeddingSpace.objects.all().delete)()
    forget_active_space()
    with pytest.raises(NoActiveSpace):
        await in_db(embed_query)("How do I do a plank?")
    assert not await in_db(EmbeddingSpace.objects.exists)()
