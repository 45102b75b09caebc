"""The trainer's queue in admin: the list, the item page and its buttons, as a trainer signed in to
the "Trainers" group with the permissions demo_setup gives it."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from chat.management.commands.demo_setup import Command as DemoSetup
from knowledge.models import Chunk
from review.models import ApprovedAnswer, ReviewDecision, ReviewItem
from review.services import review_item_claim
from tests.factories import (
    AnswerFactory,
    DocumentFactory,
    FeedbackFactory,
    ReviewItemFactory,
    TrainerFactory,
)

pytestmark = pytest.mark.django_db

LIST = reverse("admin:review_reviewitem_changelist")
Reason = ReviewItem.Reason


def page(item: ReviewItem) -> str:
    return reverse("admin:review_reviewitem_review", args=[item.pk])


@pytest.fixture
def trainer():
    DemoSetup()._groups()  # the Trainers group's real permissions
    return TrainerFactory.create()


@pytest.fixture
def client_for(trainer):
    def signed_in(user=None) -> Client:
        client = Client()
        client.force_login(user or trainer)
        return client

    return signed_in


def thumbs_down_item() -> ReviewItem:
    answer = AnswerFactory.create(text="Keep your hips level and brace the core.", confidence=0.31,
                                  reply_to__text="How long should I hold a plank?")
    FeedbackFactory.create(message=answer, reason="too vague")
    return ReviewItemFactory.create(message=answer, reasons=[Reason.LOW_CONFIDENCE, Reason.THUMBS_DOWN],
                                    feedback_reason="too vague", learning_value=1.7)


def test_the_list_shows_question_answer_confidence_reasons_and_learning_value(client_for):
    thumbs_down_item()
    response = client_for().get(LIST)
    assert response.status_code == 200
    for text in ["How long should I hold a plank?", "Keep your hips level and brace the core.", "0.31",
                 "low confidence", "thumbs down: “too vague”", "1.7"]:
        assert text in response.content.decode(), text


def test_the_list_puts_the_highest_learning_value_first_and_filters_by_reason(client_for):
    thumbs_down_item()
    ReviewItemFactory.create(message__reply_to__text="Is a deadlift bad for my back?", learning_value=3.0)
    body = client_for().get(LIST).content.decode()
    assert body.index("Is a deadlift bad for my back?") < body.index("How long should I hold a plank?")
    filtered = client_for().get(LIST, {"reason": Reason.THUMBS_DOWN}).content.decode()
    assert "How long should I hold a plank?" in filtered and "Is a deadlift" not in filtered


def test_the_list_opens_on_the_open_queue_and_shows_who_holds_a_claim(client_for, trainer):
    other = TrainerFactory.create(username="bob")
    review_item_claim(item=ReviewItemFactory.create(message__reply_to__text="Held by bob?"), user=other)
    ReviewItemFactory.create(message__reply_to__text="Already decided?", status=ReviewItem.Status.APPROVED)
    mine = review_item_claim(item=ReviewItemFactory.create(message__reply_to__text="Held by me?"), user=trainer)
    body = client_for().get(LIST).content.decode()
    assert "Held by me?" in body and "Held by bob?" not in body and "Already decided?" not in body
    everything = client_for().get(LIST, {"queue": "all"}).content.decode()
    assert "Already decided?" in everything and "claimed by bob (until" in everything
    assert mine.claimed_by == trainer


def test_the_list_shows_visitor_and_model_text_as_text(client_for):
    ReviewItemFactory.create(message__text="<script>alert(1)</script>", message__reply_to__text="<b>hi</b>")
    body = client_for().get(LIST).content.decode()
    assert "<script>alert(1)" not in body and "&lt;script&gt;alert(1)" in body
    assert "&lt;b&gt;hi&lt;/b&gt;" in body


def test_the_item_page_shows_the_excerpts_sent_to_the_model_the_feedback_and_the_history(client_for, trainer):
    document = DocumentFactory.create(title="Plank")
    chunk = Chunk.objects.create(document=document, ordinal=0, text="Raise your body on the forearms.",
                                 token_count=7)
    item = thumbs_down_item()
    item.message.sources = [{"title": "Plank", "url": "/kb/documents/1/", "chunk_id": chunk.pk, "score": 0.8}]
    item.message.save()
    review_item_claim(item=item, user=trainer)
    body = client_for().get(page(item)).content.decode()
    for text in ["How long should I hold a plank?", "Keep your hips level and brace the core.",
                 "Raise your body on the forearms.", "/kb/documents/1/", "too vague", "offline-extractive",
                 "claim", trainer.username, 'value="release"', 'data-shortcut="a"', "Keyboard:"]:
        assert text in body, text


def test_claim_then_edit_and_approve_saves_the_edited_answer_with_its_diff(client_for):
    item, client = thumbs_down_item(), client_for()
    claimed = client.post(page(item), {"action": "claim"}, follow=True)
    assert "Claimed" in claimed.content.decode()
    edited = "Hold it for 3 sets of 20-30 seconds, hips level."
    done = client.post(page(item), {"action": "edit", "text": edited}, follow=True)
    assert "Edited and approved" in done.content.decode()
    approved = ApprovedAnswer.objects.get(review_item=item)
    assert approved.answer == edited and approved.original_answer == "Keep your hips level and brace the core."
    decision = ReviewDecision.objects.get(item=item, action=ReviewDecision.Action.EDIT)
    assert "+Hold it for 3 sets" in decision.diff
    history = client.get(page(item)).content.decode()
    assert "<pre class=\"diff\">" in history and "+Hold it for 3 sets" in history


def test_after_a_decision_the_trainer_lands_on_the_next_item(client_for, trainer):
    first = ReviewItemFactory.create(learning_value=2.0)
    second = ReviewItemFactory.create(learning_value=1.0)
    review_item_claim(item=first, user=trainer)
    response = client_for().post(page(first), {"action": "approve"})
    assert response.status_code == 302 and response["Location"] == page(second)


def test_a_second_trainers_claim_shows_the_error_and_changes_nothing(client_for, trainer):
    item = review_item_claim(item=thumbs_down_item(), user=trainer)
    other = TrainerFactory.create(username="second")
    response = client_for(other).post(page(item), {"action": "claim"}, follow=True)
    assert f"{trainer.username} is reviewing this answer." in response.content.decode().lower()
    item.refresh_from_db()
    assert item.claimed_by == trainer and item.decisions.count() == 1


def test_a_rejection_without_a_reason_is_refused(client_for, trainer):
    item = review_item_claim(item=thumbs_down_item(), user=trainer)
    response = client_for().post(page(item), {"action": "reject", "reason": "  "}, follow=True)
    assert "Say why the answer is rejected." in response.content.decode()
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.CLAIMED
    client_for().post(page(item), {"action": "reject", "reason": "wrong exercise"})
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.REJECTED and item.decisions.last().note == "wrong exercise"


def test_the_bulk_reject_action_still_rejects_from_the_list(client_for):
    item = ReviewItemFactory.create()
    client_for().post(LIST, {"action": "reject_selected", "_selected_action": [item.pk]})
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.REJECTED


def test_decisions_are_read_only_and_visitors_cannot_open_the_queue(client_for, trainer):
    item = review_item_claim(item=ReviewItemFactory.create(), user=trainer)
    decision = item.decisions.get()
    client = client_for()
    assert client.get(reverse("admin:review_reviewdecision_changelist")).status_code == 200
    assert client.get(reverse("admin:review_reviewdecision_add")).status_code == 403
    assert client.post(reverse("admin:review_reviewdecision_delete", args=[decision.pk])).status_code == 403
    assert Client().get(page(item)).status_code == 302  # to the login page
    staff = TrainerFactory.create(username="no-group")
    staff.groups.clear()
    assert client_for(staff).get(page(item)).status_code == 403


def test_the_page_of_a_question_without_a_feedback_or_sources_renders(client_for):
    item = ReviewItemFactory.create(message__sources=[])
    assert client_for().get(page(item)).status_code == 200
