"""Review's services: the queue trainers work, and approved answers (saved, imported, embedded, counted)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.utils import timezone
from pgvector.django import CosineDistance

from chat.models import CacheEntry, Message
from knowledge.embeddings import active_space_ref, embed_query, forget_active_space
from knowledge.models import EmbeddingSpace
from knowledge.services import embedding_model_sync, space_build
from review.models import ApprovedAnswer, ReviewItem
from review.services import (
    CsvImportError,
    approved_answer_hit,
    approved_answer_save,
    approved_answers_embed,
    approved_answers_import_csv,
    review_item_enqueue,
    review_item_reject,
)
from tests.factories import (
    AnswerFactory,
    ApprovedAnswerFactory,
    CacheEntryFactory,
    ReviewItemFactory,
    TrainerFactory,
)

pytestmark = pytest.mark.django_db


def nearest_approved(question: str) -> ApprovedAnswer:
    """The approved answer whose question is nearest to this one in the active space."""
    vector = embed_query(question)
    return ApprovedAnswer.objects.filter(space_id=vector.space_id).order_by(
        CosineDistance("embedding", vector.vector)
    )[0]


# --- the review queue -------------------------------------------------------------------------------


def test_it_queues_an_unsure_answer_for_trainers():
    answer = AnswerFactory.create()

    item = review_item_enqueue(message_id=answer.pk, priority=0.7, reasons=["low_confidence"])

    queued = ReviewItem.objects.get(message=answer)
    assert queued.pk == item.pk
    assert (queued.status, queued.priority, queued.reason) == (ReviewItem.Status.PENDING, 0.7, "low confidence")
    assert queued.reasons == ["low_confidence"] and queued.learning_value == pytest.approx(0.7)


def test_it_raises_the_priority_of_an_answer_already_queued():
    answer = AnswerFactory.create()
    review_item_enqueue(message_id=answer.pk, priority=0.3, reasons=["low_confidence"])

    item = review_item_enqueue(message_id=answer.pk, priority=0.9, reasons=["thumbs_down"])

    assert ReviewItem.objects.filter(message=answer).count() == 1
    assert item.priority == 0.9 and ReviewItem.objects.get(message=answer).priority == 0.9


def test_it_never_lowers_the_priority_of_an_answer_already_queued():
    answer = AnswerFactory.create()
    review_item_enqueue(message_id=answer.pk, priority=0.9, reasons=["thumbs_down"])

    item = review_item_enqueue(message_id=answer.pk, priority=0.2, reasons=["low_confidence"])

    assert item.priority == 0.9 and ReviewItem.objects.get(message=answer).priority == 0.9


def test_the_queue_puts_the_most_urgent_answer_first():
    calm, urgent = AnswerFactory.create(), AnswerFactory.create()
    review_item_enqueue(message_id=calm.pk, priority=0.4, reasons=["low_confidence"])
    review_item_enqueue(message_id=urgent.pk, priority=0.5, reasons=["low_confidence"])
    review_item_enqueue(message_id=calm.pk, priority=0.2, reasons=["low_confidence"])
    review_item_enqueue(message_id=urgent.pk, priority=0.95, reasons=["thumbs_down"])

    assert [i.message_id for i in ReviewItem.objects.filter(status="pending")] == [urgent.pk, calm.pk]


def test_it_records_who_rejected_an_answer_and_when():
    item, trainer = ReviewItemFactory.create(), TrainerFactory.create()
    before = timezone.now()

    review_item_reject(item=item, reviewer=trainer, reason="wrong exercise")

    item.refresh_from_db()
    assert item.status == ReviewItem.Status.REJECTED and item.decided_by == trainer
    assert item.decided_at is not None and before <= item.decided_at <= timezone.now()


def test_a_rejected_answer_is_never_served_from_the_cache_again():
    item = ReviewItemFactory.create()
    stored = CacheEntryFactory.create(message=item.message)
    paraphrase = CacheEntryFactory.create(question="plank how to", alias_of=stored)  # served the same answer
    other = CacheEntryFactory.create(message=AnswerFactory.create())

    review_item_reject(item=item, reviewer=TrainerFactory.create(), reason="wrong")

    blocked = CacheEntry.objects.filter(blocked_at__isnull=False)
    assert set(blocked.values_list("pk", flat=True)) == {stored.pk, paraphrase.pk}
    assert CacheEntry.objects.get(pk=other.pk).blocked_at is None


def test_rejecting_an_answer_served_from_the_cache_blocks_the_entry_it_came_from():
    origin = CacheEntryFactory.create(message=AnswerFactory.create())
    served = AnswerFactory.create(reuse=Message.Reuse.CACHE, reused_entry=origin)
    item = ReviewItemFactory.create(message=served)

    review_item_reject(item=item, reviewer=TrainerFactory.create(), reason="wrong")

    origin.refresh_from_db()
    assert origin.blocked_at is not None and origin.blocked_reason


# --- approved answers: embedding ----------------------------------------------------------------------


def test_it_embeds_approved_answers_missing_from_the_active_space():
    plank = ApprovedAnswerFactory.create(question="How do I hold a plank?", answer="Straight line, elbows down.")
    squat = ApprovedAnswerFactory.create(question="How deep should I squat?", answer="Hips below the knees.")

    assert approved_answers_embed() == 2

    space = active_space_ref()
    for answer in (plank, squat):
        answer.refresh_from_db()
        assert answer.space_id == space.space_id and len(answer.embedding or []) == space.spec.dimensions
    assert nearest_approved("what is the right plank position").pk == plank.pk
    assert nearest_approved("squat depth for beginners").pk == squat.pk


def test_it_leaves_answers_already_in_the_active_space_alone():
    approved_answer_save(answer=ApprovedAnswerFactory.build(question="How do I hold a plank?"))
    fresh = ApprovedAnswerFactory.create(question="How deep should I squat?")

    assert approved_answers_embed() == 1
    assert approved_answers_embed() == 0
    fresh.refresh_from_db()
    assert fresh.space_id == active_space_ref().space_id


def test_it_re_embeds_every_approved_answer_after_the_embedding_model_changes(settings, llm_server):
    approved_answer_save(answer=ApprovedAnswerFactory.build(question="How do I hold a plank?"))
    approved_answer_save(answer=ApprovedAnswerFactory.build(question="How deep should I squat?"))
    old = active_space_ref().space_id

    settings.EMBEDDING_BACKEND, settings.EMBEDDING_MODEL = "openai", "text-embedding-3-small"
    settings.EMBEDDING_DIMENSIONS = 64
    settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = llm_server.base_url, "test"
    building = embedding_model_sync()
    assert building is not None
    space_build(space_id=building.pk)
    forget_active_space()
    assert active_space_ref().space_id != old

    assert approved_answers_embed() == 2

    new = active_space_ref().space_id
    assert {(a.space_id, len(a.embedding or [])) for a in ApprovedAnswer.objects.all()} == {(new, 64)}
    assert nearest_approved("plank: how do I hold it").question == "How do I hold a plank?"


# --- approved answers: saving and counting -------------------------------------------------------------


def test_the_embed_job_does_nothing_before_anything_is_ingested_or_approved():
    assert approved_answers_embed() == 0
    assert not EmbeddingSpace.objects.exists()


def test_a_saved_answer_is_found_by_the_next_similar_question():
    approved_answer_save(answer=ApprovedAnswerFactory.build(question="How deep should I squat?"))
    answer = ApprovedAnswerFactory.build(question="How do I hold a plank?", answer="Straight line.")

    saved = approved_answer_save(answer=answer)

    row = ApprovedAnswer.objects.get(pk=saved.pk)
    assert row.space_id == active_space_ref().space_id and row.embedding is not None
    assert nearest_approved("what is the right plank position").pk == saved.pk


def test_an_edited_question_is_found_by_its_new_wording():
    answer = approved_answer_save(answer=ApprovedAnswerFactory.build(question="How do I hold a plank?"))
    approved_answer_save(answer=ApprovedAnswerFactory.build(question="How do I do a push-up?"))

    answer.question = "How deep should I squat?"
    approved_answer_save(answer=answer)

    assert nearest_approved("squat depth for beginners").pk == answer.pk
    assert nearest_approved("what is the right plank position").pk != answer.pk


def test_it_counts_each_time_an_approved_answer_is_served():
    served, unused = ApprovedAnswerFactory.create(), ApprovedAnswerFactory.create()
    before = timezone.now()

    approved_answer_hit(answer_id=served.pk)
    approved_answer_hit(answer_id=served.pk)

    served.refresh_from_db()
    unused.refresh_from_db()
    assert served.last_hit_at is not None and before <= served.last_hit_at <= timezone.now()
    assert served.hit_count == 2
    assert (unused.hit_count, unused.last_hit_at) == (0, None)


# --- approved answers: CSV import ------------------------------------------------------------------------


def test_it_imports_every_row_of_a_csv_embedded_and_attributed_to_the_trainer():
    trainer = TrainerFactory.create()
    data = (
        b"question,answer,language,scope,expires_at\n"
        b"How do I hold a plank?,Straight line.,en,coach,\n"
        b"Wie tief soll ich hocken?,Bis unter die Knie.,de,,\n"
    )

    assert approved_answers_import_csv(data=data, user=trainer) == 2

    plank = ApprovedAnswer.objects.get(question="How do I hold a plank?")
    squat = ApprovedAnswer.objects.get(question="Wie tief soll ich hocken?")
    assert (plank.answer, plank.language, plank.scope, plank.expires_at) == ("Straight line.", "en", "coach", None)
    assert (squat.language, squat.scope) == ("de", "")
    assert {a.created_by for a in (plank, squat)} == {trainer}
    assert {a.space_id for a in (plank, squat)} == {active_space_ref().space_id}


def test_rows_without_a_language_are_english():
    data = b"question,answer\nHow do I hold a plank?,Straight line.\n"

    approved_answers_import_csv(data=data)

    assert ApprovedAnswer.objects.get().language == "en"


def test_it_imports_nothing_when_one_row_is_bad_and_names_its_line():
    ApprovedAnswerFactory.create(question="Kept from before")
    data = b"question,answer\nHow do I hold a plank?,Straight line.\n,an answer without its question\n"

    with pytest.raises(CsvImportError, match="line 3: question and answer must not be empty"):
        approved_answers_import_csv(data=data)

    assert list(ApprovedAnswer.objects.values_list("question", flat=True)) == ["Kept from before"]


def test_a_date_expires_at_midnight_and_a_time_with_its_offset_is_kept():
    data = (
        b"question,answer,expires_at\n"
        b"How do I hold a plank?,Straight line.,2030-01-01\n"
        b"How deep should I squat?,Below the knees.,2030-06-01T12:30:00+02:00\n"
    )

    approved_answers_import_csv(data=data)

    plank = ApprovedAnswer.objects.get(question="How do I hold a plank?")
    squat = ApprovedAnswer.objects.get(question="How deep should I squat?")
    assert plank.expires_at == timezone.make_aware(datetime(2030, 1, 1))
    assert squat.expires_at == datetime(2030, 6, 1, 10, 30, tzinfo=UTC)


def test_it_refuses_an_expiry_that_is_not_a_date_and_names_its_line():
    data = b"question,answer,expires_at\nHow do I hold a plank?,Straight line.,\nSquat?,Low.,next year\n"

    with pytest.raises(CsvImportError, match="line 3: expires_at 'next year' is not a date"):
        approved_answers_import_csv(data=data)

    assert not ApprovedAnswer.objects.exists()


def test_it_reads_a_csv_saved_with_a_byte_order_mark():
    data = "question,answer\nHow do I hold a plank?,Straight line.\n".encode("utf-8-sig")

    assert approved_answers_import_csv(data=data) == 1
    assert ApprovedAnswer.objects.get().question == "How do I hold a plank?"


def test_it_refuses_a_csv_without_the_question_and_answer_columns():
    with pytest.raises(CsvImportError, match="header with at least the columns question and answer"):
        approved_answers_import_csv(data=b"prompt,reply\nHow do I hold a plank?,Straight line.\n")
    with pytest.raises(CsvImportError, match="header"):
        approved_answers_import_csv(data=b"")
    assert not ApprovedAnswer.objects.exists()


def test_it_refuses_a_file_that_is_not_utf8():
    data = "question,answer\nWie hält man die Übung?,Gerade.\n".encode("latin-1")

    with pytest.raises(CsvImportError, match="not a UTF-8 CSV file"):
        approved_answers_import_csv(data=data)

    assert not ApprovedAnswer.objects.exists()

