"""Follow-up questions over the real pipeline (chat/pipeline.py `searched_as`, chat/standalone.py): what a
follow-up retrieves and reuses is read from the question made to stand alone, and a trainer sees that form."""

import pytest
from channels.db import database_sync_to_async as in_db

from chat.models import Message
from chat.safety.screening import REFUSALS
from review.models import ApprovedAnswer, ReviewItem
from review.services import review_item_approve, review_item_claim, review_item_enqueue
from tests.chat.test_pipeline import ask, stored
from tests.chat.test_standalone import wide_kb  # noqa: F401  (a fixture)
from tests.factories import TrainerFactory
from tests.safety.test_pipeline_policies import ATTACK

pytestmark = pytest.mark.django_db(transaction=True)


async def conversation(*questions, visitor="v1"):
    """Ask each question in one conversation; the last turn and its `end` frame."""
    turn, end, conversation_id = None, None, None
    for question in questions:
        turn, end = await ask(question, conversation_id=conversation_id, visitor=visitor)
        conversation_id = turn.conversation_id
    return turn, end


async def test_a_follow_up_is_answered_from_the_exercise_the_conversation_is_about(wide_kb):  # noqa: F811
    alone, alone_end = await ask("What muscles does it work?")

    turn, end = await conversation("How do I do a barbell squat?", "What muscles does it work?")

    question, answer = await stored(turn)
    assert question.text == "What muscles does it work?"  # what the visitor typed, as the trainer reads it
    assert question.standalone_query.startswith("What muscles does it work?")
    assert "squat" in question.standalone_query.lower()
    assert "squat" in end["sources"][0]["title"].lower()
    assert not any("squat" in s["title"].lower() for s in alone_end["sources"][:1])  # the question alone
    assert answer.status == Message.Status.COMPLETE


async def test_a_follow_up_that_stands_alone_is_searched_as_asked(kb):
    turn, end = await conversation("How do I do a barbell squat?", "How do I do a plank?")

    question, _ = await stored(turn)
    assert question.standalone_query == ""
    assert "plank" in end["sources"][0]["title"].lower()


def _trainer_approves(answer_id, text: str) -> ApprovedAnswer:
    """As a trainer does in admin: the answer's review item claimed, then approved with an edit."""
    item = ReviewItem.objects.filter(message_id=answer_id).first() or review_item_enqueue(
        message_id=answer_id, reasons=[ReviewItem.Reason.LOW_CONFIDENCE])
    trainer = TrainerFactory.create()
    review_item_claim(item=item, user=trainer)
    return review_item_approve(item=item, reviewer=trainer, text=text)


async def test_an_approved_follow_up_answer_is_reused_after_the_same_exercise_only(kb):
    squats, _ = await conversation("How do I do a barbell squat?", "How many sets?")
    question, _ = await stored(squats)
    approved = await in_db(_trainer_approves)(squats.answer_id, "Three to five sets of five for the barbell squat.")
    assert approved.question == question.standalone_query  # matched on what the follow-up meant

    _, after_bench = await conversation("How do I do a barbell bench press?", "How many sets?", visitor="v2")
    _, after_squats = await conversation("How do I do a barbell squat?", "How many sets?", visitor="v3")

    assert after_bench["reuse"] == "none"  # never the squat's answer after bench presses
    assert after_squats["reuse"] == "approved"


async def test_a_refused_question_is_refused_even_when_the_search_fails(kb, settings):
    settings.SAFETY_INJECTION_POLICY = "refuse"
    settings.KNOWLEDGE_FTS_CONFIGS = {"en": "no_such_configuration"}

    turn, end = await ask(ATTACK)

    _, answer = await stored(turn)
    assert end["type"] == "end" and answer.text == REFUSALS[ReviewItem.Reason.INJECTION]
    assert answer.refused and answer.sources == []


async def test_a_question_that_is_not_refused_fails_cleanly_when_the_search_fails(kb, settings):
    settings.KNOWLEDGE_FTS_CONFIGS = {"en": "no_such_configuration"}

    turn, frame = await ask("How do I do a barbell squat?")

    question, answer = await stored(turn)
    assert frame["type"] == "error" and frame["code"] == "internal_error"
    assert question.text == "How do I do a barbell squat?" and answer.status == Message.Status.FAILED
    assert not answer.refused
