"""The review loop: signals bring answers into the queue, trainers claim, approve, edit, reject or skip
them through guarded state changes, each recorded, and an approval is served at once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async as in_db
from django.conf import settings
from django.db import connection
from django.utils import timezone

from chat.models import Message
from chat.services import conversation_handoff, feedback_set
from knowledge.embeddings import active_space_ref
from review.models import ApprovedAnswer, ReviewDecision, ReviewItem
from review.selectors import claim_expires_at, review_queue
from review.services import (
    ReviewConflict,
    review_item_approve,
    review_item_claim,
    review_item_enqueue,
    review_item_reject,
    review_item_release,
    review_item_screen,
    review_item_skip,
)
from tests.chat.test_pipeline import ask
from tests.factories import AnswerFactory, ConversationFactory, ReviewItemFactory, TrainerFactory

pytestmark = pytest.mark.django_db

Status = ReviewItem.Status


def actions(item: ReviewItem) -> list[str]:
    return list(item.decisions.values_list("action", flat=True))


def lapse_claim(item: ReviewItem) -> None:
    """As if the claim had been made longer ago than a claim lasts."""
    long_ago = timezone.now() - timedelta(minutes=settings.REVIEW_CLAIM_MINUTES, seconds=1)
    ReviewItem.objects.filter(pk=item.pk).update(claimed_at=long_ago)


def conflict_code(action, **kwargs) -> str:
    with pytest.raises(ReviewConflict) as refused:
        action(**kwargs)
    return refused.value.code


def claimed_item(trainer=None) -> tuple[ReviewItem, object]:
    trainer = trainer or TrainerFactory.create()
    return review_item_claim(item=ReviewItemFactory.create(), user=trainer), trainer


# --- claiming -----------------------------------------------------------------------------------------


def test_it_lets_a_trainer_claim_an_answer_and_records_it():
    item, trainer = ReviewItemFactory.create(), TrainerFactory.create()

    claimed = review_item_claim(item=item, user=trainer)

    assert (claimed.status, claimed.claimed_by) == (Status.CLAIMED, trainer)
    assert claim_expires_at(item=claimed) == claimed.claimed_at + timedelta(minutes=settings.REVIEW_CLAIM_MINUTES)
    decision = ReviewDecision.objects.get(item=item)
    assert (decision.action, decision.user, decision.at) == ("claim", trainer, claimed.claimed_at)
    assert decision.before["status"] == "pending" and decision.after == {
        "status": "claimed", "claimed_by": trainer.pk, "learning_value": item.learning_value,
    }


def test_another_trainer_cannot_claim_an_answer_already_claimed():
    item, alice = claimed_item()
    bob = TrainerFactory.create()

    assert conflict_code(review_item_claim, item=item, user=bob) == "claimed_by_other"

    item.refresh_from_db()
    assert item.claimed_by == alice and actions(item) == ["claim"]


@pytest.mark.django_db(transaction=True)
def test_two_trainers_claiming_at_once_get_it_for_one_of_them():
    item = ReviewItemFactory.create()
    trainers = [TrainerFactory.create(), TrainerFactory.create()]
    start, outcomes = threading.Barrier(2), {}

    def claim(trainer):
        try:
            start.wait()
            review_item_claim(item=item, user=trainer)
            outcomes[trainer.username] = "claimed"
        except ReviewConflict as exc:
            outcomes[trainer.username] = exc.code
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(trainer,)) for trainer in trainers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(outcomes.values()) == ["claimed", "claimed_by_other"]
    item.refresh_from_db()
    assert outcomes[item.claimed_by.username] == "claimed" and actions(item) == ["claim"]


def test_a_lapsed_claim_can_be_taken_by_another_trainer():
    item, _ = claimed_item()
    lapse_claim(item)
    bob = TrainerFactory.create()

    taken = review_item_claim(item=item, user=bob)

    assert taken.claimed_by == bob and actions(item) == ["claim", "claim"]
    assert list(review_queue()) == []  # held again: not offered to others


def test_claiming_again_renews_ones_own_claim():
    item, alice = claimed_item()
    lapse_claim(item)

    renewed = review_item_claim(item=item, user=alice)

    assert renewed.claimed_by == alice and claim_expires_at(item=renewed) > timezone.now()


def test_a_released_answer_goes_back_to_the_queue_untouched():
    item, alice = claimed_item()

    released = review_item_release(item=item, user=alice)

    assert (released.status, released.claimed_by, released.learning_value) == (Status.PENDING, None, 0.6)
    assert list(review_queue()) == [released] and actions(item) == ["claim", "release"]
    assert conflict_code(review_item_release, item=item, user=alice) == "not_claimed"


# --- approving ------------------------------------------------------------------------------------------


def test_an_approval_stores_the_question_and_answer_for_reuse_and_records_who_approved():
    item, trainer = claimed_item()
    answer = item.message

    approved = review_item_approve(item=item, reviewer=trainer)

    item.refresh_from_db()
    assert (item.status, item.decided_by) == (Status.APPROVED, trainer) and item.decided_at is not None
    assert (approved.question, approved.answer, approved.original_answer) == (answer.reply_to.text, answer.text, "")
    assert (approved.sources, approved.language) == (answer.sources, "en")
    assert (approved.source_message, approved.review_item, approved.created_by) == (answer, item, trainer)
    assert approved.space_id == active_space_ref().space_id and approved.embedding is not None
    decision = item.decisions.get(action="approve")
    assert (decision.user, decision.at, decision.diff) == (trainer, item.decided_at, "")
    assert decision.before["status"] == "claimed" and decision.after["status"] == "approved"
    assert decision.before["answer"] == decision.after["answer"] == answer.text


def test_an_edited_answer_is_approved_with_a_diff_to_the_original():
    item, trainer = claimed_item()
    original = item.message.text
    edited = "Hold a straight line from head to heels.\nSqueeze your glutes and breathe."

    approved = review_item_approve(item=item, reviewer=trainer, text=edited)

    item.refresh_from_db()
    assert item.status == Status.EDITED
    assert (approved.answer, approved.original_answer) == (edited, original)
    decision = item.decisions.get(action="edit")
    assert (decision.before["answer"], decision.after["answer"]) == (original, edited)
    assert f"-{original}" in decision.diff and "+Squeeze your glutes and breathe." in decision.diff
    assert decision.diff.startswith("--- answer\n+++ edited")


def test_approving_the_text_unchanged_is_a_plain_approval():
    item, trainer = claimed_item()

    approved = review_item_approve(item=item, reviewer=trainer, text=item.message.text + "\n")

    assert ReviewItem.objects.get(pk=item.pk).status == Status.APPROVED and approved.original_answer == ""


def test_it_refuses_an_approval_after_the_claim_lapsed():
    item, trainer = claimed_item()
    lapse_claim(item)

    assert conflict_code(review_item_approve, item=item, reviewer=trainer) == "claim_lapsed"

    assert ReviewItem.objects.get(pk=item.pk).status == Status.CLAIMED
    assert not ApprovedAnswer.objects.exists() and actions(item) == ["claim"]


def test_only_the_trainer_holding_the_claim_can_approve():
    item, _ = claimed_item()
    unclaimed = ReviewItemFactory.create()
    bob = TrainerFactory.create()

    assert conflict_code(review_item_approve, item=item, reviewer=bob) == "claimed_by_other"
    assert conflict_code(review_item_approve, item=unclaimed, reviewer=bob) == "not_claimed"
    assert not ApprovedAnswer.objects.exists()


def test_it_refuses_an_empty_edit():
    item, trainer = claimed_item()

    assert conflict_code(review_item_approve, item=item, reviewer=trainer, text="  ") == "empty_answer"
    assert ReviewItem.objects.get(pk=item.pk).status == Status.CLAIMED


# --- rejecting and skipping --------------------------------------------------------------------------------


def test_rejecting_twice_is_refused_and_recorded_once_with_its_reason():
    item, trainer = claimed_item()

    review_item_reject(item=item, reviewer=trainer, reason="cites the wrong exercise")

    assert conflict_code(review_item_reject, item=item, reviewer=trainer, reason="again") == "already_decided"
    decision = item.decisions.get(action="reject")
    assert (decision.user, decision.note, decision.after["status"]) == (trainer, "cites the wrong exercise", "rejected")
    assert actions(item) == ["claim", "reject"]


def test_a_trainer_cannot_reject_an_answer_another_is_reviewing_nor_approve_a_rejected_one():
    item, alice = claimed_item()
    bob = TrainerFactory.create()

    assert conflict_code(review_item_reject, item=item, reviewer=bob, reason="no") == "claimed_by_other"
    review_item_reject(item=item, reviewer=alice, reason="wrong")
    assert conflict_code(review_item_claim, item=item, user=bob) == "already_decided"
    assert conflict_code(review_item_approve, item=item, reviewer=alice) == "already_decided"


def test_rejecting_an_approved_answer_after_a_complaint_stops_serving_it():
    item, trainer = claimed_item()
    approved = review_item_approve(item=item, reviewer=trainer)
    review_item_enqueue(message_id=item.message_id, reasons=["thumbs_down"], feedback_reason="wrong")

    review_item_reject(item=item, reviewer=trainer, reason="wrong after all")

    approved.refresh_from_db()
    assert not approved.is_active


def test_a_skipped_answer_returns_to_the_queue_behind_the_others():
    item, trainer = claimed_item()
    other = ReviewItemFactory.create()  # as valuable as the skipped one

    skipped = review_item_skip(item=item, reviewer=trainer)

    assert (skipped.status, skipped.claimed_by, skipped.skip_count) == (Status.PENDING, None, 1)
    assert skipped.learning_value == pytest.approx(0.6 - settings.REVIEW_WEIGHTS["skip"])
    assert list(review_queue()) == [other, skipped]
    decision = item.decisions.get(action="skip")
    assert (decision.user, decision.before["status"], decision.after["status"]) == (trainer, "claimed", "pending")


def test_an_answer_every_trainer_skips_leaves_the_queue_until_a_new_signal(settings):
    settings.REVIEW_MAX_SKIPS = 2
    item, alice = claimed_item()
    review_item_skip(item=item, reviewer=alice)
    bob = TrainerFactory.create()
    review_item_claim(item=item, user=bob)

    parked = review_item_skip(item=item, reviewer=bob)

    assert parked.status == Status.SKIPPED and list(review_queue()) == []
    back = review_item_enqueue(message_id=item.message_id, reasons=["repeated_question"])
    assert back.status == Status.PENDING and list(review_queue()) == [back]


def test_skipping_needs_a_live_claim():
    item, trainer = claimed_item()
    lapse_claim(item)

    assert conflict_code(review_item_skip, item=item, reviewer=trainer) == "claim_lapsed"


# --- signals into the queue -------------------------------------------------------------------------------


def test_a_second_signal_adds_its_reason_and_raises_the_learning_value():
    answer = AnswerFactory.create()
    first = review_item_enqueue(message_id=answer.pk, reasons=["low_confidence"], priority=0.6)

    second = review_item_enqueue(message_id=answer.pk, reasons=["thumbs_down"], feedback_reason="too vague")

    assert second.pk == first.pk and second.reasons == ["low_confidence", "thumbs_down"]
    assert (second.reason, second.feedback_reason, second.priority) == ("thumbs down", "too vague", 0.6)
    assert second.learning_value == pytest.approx(0.6 + settings.REVIEW_WEIGHTS["thumbs_down"])
    assert second.learning_value > first.learning_value


def test_a_complaint_reopens_an_approved_answer_but_not_a_rejected_one():
    approved_item, alice = claimed_item()
    review_item_approve(item=approved_item, reviewer=alice)
    rejected_item, _ = claimed_item(alice)
    review_item_reject(item=rejected_item, reviewer=alice, reason="wrong")

    reopened = review_item_enqueue(message_id=approved_item.message_id, reasons=["handoff"])
    still = review_item_enqueue(message_id=rejected_item.message_id, reasons=["thumbs_down"])

    assert (reopened.status, reopened.decided_by) == (Status.PENDING, None)
    assert actions(reopened) == ["claim", "approve", "reopen"]
    assert reopened.decisions.get(action="reopen").note == "handoff"
    assert still.status == Status.REJECTED and "thumbs_down" in still.reasons


def test_an_unsure_answer_or_one_without_sources_is_queued_and_a_sure_one_is_not():
    unsure, unsourced, sure = AnswerFactory.create(), AnswerFactory.create(), AnswerFactory.create()

    review_item_screen(message_id=unsure.pk, confidence=0.3, cited=1)
    review_item_screen(message_id=unsourced.pk, confidence=0.2, cited=0)
    assert review_item_screen(message_id=sure.pk, confidence=0.9, cited=2) is None

    assert ReviewItem.objects.get(message=unsure).reasons == ["low_confidence"]
    assert ReviewItem.objects.get(message=unsourced).reasons == ["low_confidence", "no_kb_match"]
    assert not ReviewItem.objects.filter(message=sure).exists()


def test_a_thumbs_down_enters_the_queue_with_the_visitors_reason_and_a_thumbs_up_does_not():
    disliked, liked = AnswerFactory.create(confidence=0.8), AnswerFactory.create()

    feedback_set(visitor_id=disliked.conversation.visitor_id, message_id=disliked.pk, value="down",
                 reason="too vague")
    feedback_set(visitor_id=liked.conversation.visitor_id, message_id=liked.pk, value="up")

    item = ReviewItem.objects.get()
    assert (item.message, item.status, item.reasons) == (disliked, Status.PENDING, ["thumbs_down"])
    assert (item.reason, item.feedback_reason) == ("thumbs down", "too vague")
    assert item.learning_value == pytest.approx(0.2 + settings.REVIEW_WEIGHTS["thumbs_down"])


def test_a_handoff_request_queues_the_answer_that_left_the_visitor_wanting_a_human():
    conversation = ConversationFactory.create()
    earlier = AnswerFactory.create(conversation=conversation)
    latest = AnswerFactory.create(conversation=conversation)
    AnswerFactory.create(conversation=conversation, status=Message.Status.FAILED)  # nothing to approve

    assert conversation_handoff(conversation=conversation)

    item = ReviewItem.objects.get()
    assert (item.message, item.reasons, item.reason) == (latest, ["handoff"], "asked for a human")
    assert not ReviewItem.objects.filter(message=earlier).exists()


# --- an approval takes effect at once --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_an_approval_is_served_at_once_to_a_paraphrase_of_the_question(kb):
    first, first_end = await ask("How do I do a barbell squat?", visitor="alice")
    await in_db(feedback_set)(visitor_id="alice", message_id=first.answer_id, value="down", reason="too long")
    trainer = await in_db(TrainerFactory.create)()
    item = await in_db(ReviewItem.objects.get)(message_id=first.answer_id)
    await in_db(review_item_claim)(item=item, user=trainer)
    await in_db(review_item_approve)(item=item, reviewer=trainer, text="Brace, sit back, knees out. (verified)")

    turn, end = await ask("How do I do a barbell squat correctly?", visitor="bob")

    assert end["reuse"] == "approved" and end["sources"] == first_end["sources"]
    served = await in_db(Message.objects.get)(pk=turn.answer_id)
    assert served.text == "Brace, sit back, knees out. (verified)"
    assert served.approved_answer_id is not None and served.reused_entry_id is None  # not the cache's
