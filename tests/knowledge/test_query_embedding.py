import threading

import pytest

from knowledge import embeddings
from knowledge.embeddings import embed_query, embed_query_background, embed_query_soon

# The embedding thread reads the active space with its own connection: it must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


def test_queries_asked_while_the_model_is_busy_are_embedded_together_each_with_its_own_vector(monkeypatch):
    questions = ["How do I do a barbell squat?", "What muscles does the plank work?", "Any tips for lunges?"]
    alone = {q: embed_query(q).vector for q in ["Warm-up first", *questions]}
    real_model = embeddings.embed_texts
    busy, release, batches = threading.Event(), threading.Event(), []

    def model(texts, spec=None):
        batches.append(list(texts))
        busy.set()
        release.wait(5)  # the first pass runs until every other question has arrived
        return real_model(texts, spec)

    monkeypatch.setattr(embeddings, "embed_texts", model)
    first = embed_query_background("Warm-up first")
    assert busy.wait(5)
    others = [embed_query_soon(q) for q in questions]  # as the pipeline asks, from the event loop
    release.set()

    assert first.result(5).vector == pytest.approx(alone["Warm-up first"], abs=1e-5)
    assert batches[1] == questions  # one forward pass for the three that waited
    for question, future in zip(questions, others, strict=True):
        assert future.result(5).vector == pytest.approx(alone[question], abs=1e-5)


def test_a_failed_forward_pass_fails_every_query_in_it_and_the_next_query_is_embedded(monkeypatch):
    embed_query("warm the active space")
    real_model = embeddings.embed_texts
    calls = []

    def failing_once(texts, spec=None):
        calls.append(texts)
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return real_model(texts, spec)

    monkeypatch.setattr(embeddings, "embed_texts", failing_once)
    with pytest.raises(RuntimeError, match="out of memory"):
        embed_query_background("How do I do a barbell squat?").result(5)
    assert len(embed_query_background("How do I do a barbell squat?").result(5).vector) == 384
