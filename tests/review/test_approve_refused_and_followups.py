"""What a trainer's approval may stand for: never the safety policy's refusal (it is not an answer to the
question), and for a follow-up, the question as search read it (its standalone form), so that the
approved answer is matched on what was meant."""

from __future__ import annotations

import numpy as np
import pytest
from django.urls import reverse

from chat.management.commands.demo_setup import Command as DemoSetup
from chat.models import CacheEntry
from knowledge.embeddings import embed_query
from review.export import training_data_build
from review.models import ApprovedAnswer, ReviewDecision, ReviewItem
from review.services import ReviewConflict, review_item_approve, review_item_claim, review_item_reject
from tests.factories import AnswerFactory, ReviewItemFactory, TrainerFactory

pytestmark = pytest.mark.django_db

REFUSAL = "I can't help with that request."
FOLLOW_UP, STANDALONE = "How many sets?", "How many sets of barbell squats should I do?"


@pytest.fixture
def trainer():
    DemoSetup()._groups()  # the Trainers group's real permissions
    return TrainerFactory.create()


def refused_item() -> ReviewItem:
    answer = AnswerFactory.create(text=REFUSAL, refused=True, sources=[], reply_to__text="I will punch you.")
    return ReviewItemFactory.create(message=answer, reasons=[ReviewItem.Reason.LOW_CONFIDENCE])


@pytest.mark.parametrize("edited", [None, "Keep calm and train on."])
def test_a_refusal_is_never_approved_nor_edited_and_nothing_is_kept_for_reuse_or_training(trainer, edited):
    item = review_item_claim(item=refused_item(), user=trainer)
    entries = CacheEntry.objects.count()

    with pytest.raises(ReviewConflict) as refused:
        review_item_approve(item=item, reviewer=trainer, text=edited)

    assert refused.value.code == "refused" and "refusal" in str(refused.value)
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.CLAIMED  # still the trainer's to reject or skip
    assert not ApprovedAnswer.objects.exists() and CacheEntry.objects.count() == entries
    assert not item.decisions.filter(action__in=[ReviewDecision.Action.APPROVE, ReviewDecision.Action.EDIT]).exists()
    export = training_data_build()
    assert export.train == export.validation == export.evaluation == []


def test_a_refusal_can_still_be_rejected(trainer):
    item = review_item_claim(item=refused_item(), user=trainer)
    rejected = review_item_reject(item=item, reviewer=trainer, reason="a refusal is not an answer")
    assert rejected.status == ReviewItem.Status.REJECTED


def test_in_admin_approving_a_refusal_shows_the_error_and_approves_nothing(client, trainer):
    item = review_item_claim(item=refused_item(), user=trainer)
    client.force_login(trainer)
    page = reverse("admin:review_reviewitem_review", args=[item.pk])

    for action in ({"action": "approve"}, {"action": "edit", "text": "Keep calm."}):
        response = client.post(page, action, follow=True)
        assert "the safety policy&#x27;s refusal" in response.content.decode()
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.CLAIMED and not ApprovedAnswer.objects.exists()


def test_an_approved_follow_up_is_matched_on_its_standalone_form(trainer):
    answer = AnswerFactory.create(text="Three to five sets of five [1].", reply_to__text=FOLLOW_UP,
                                  reply_to__standalone_query=STANDALONE)
    item = review_item_claim(item=ReviewItemFactory.create(message=answer), user=trainer)

    approved = review_item_approve(item=item, reviewer=trainer)

    approved.refresh_from_db()
    assert approved.question == STANDALONE
    stored = np.asarray(approved.embedding)
    meant, asked = (np.asarray(embed_query(q).vector) for q in (STANDALONE, FOLLOW_UP))
    assert cosine(stored, meant) > 0.99 > cosine(stored, asked)  # embedded as meant, not as asked


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_a_question_that_stood_alone_is_approved_as_it_was_asked_and_so_are_grouped_follow_ups(trainer):
    answer = AnswerFactory.create(text="Three to five sets of five [1].", reply_to__text=STANDALONE)
    item = ReviewItemFactory.create(message=answer)
    member_answer = AnswerFactory.create(reply_to__text="And for squats, how many?",
                                         reply_to__standalone_query="How many sets of squats should I do?")
    member = ReviewItemFactory.create(message=member_answer, status=ReviewItem.Status.GROUPED, representative=item)
    review_item_claim(item=item, user=trainer)

    review_item_approve(item=item, reviewer=trainer)

    assert ApprovedAnswer.objects.get(review_item=item).question == STANDALONE
    assert ApprovedAnswer.objects.get(review_item=member).question == "How many sets of squats should I do?"


def test_grouped_questions_with_the_same_standalone_form_share_one_approved_answer(trainer):
    answer = AnswerFactory.create(text="Three to five sets of five [1].", reply_to__text=FOLLOW_UP,
                                  reply_to__standalone_query=STANDALONE)
    item = ReviewItemFactory.create(message=answer)
    twin = AnswerFactory.create(reply_to__text="how many sets then?", reply_to__standalone_query=STANDALONE)
    ReviewItemFactory.create(message=twin, status=ReviewItem.Status.GROUPED, representative=item)
    review_item_claim(item=item, user=trainer)

    review_item_approve(item=item, reviewer=trainer)

    assert list(ApprovedAnswer.objects.values_list("question", flat=True)) == [STANDALONE]
