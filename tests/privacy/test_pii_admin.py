"""Staff see visitors' text masked in admin; only the chat.view_pii permission shows what was typed."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from chat.guard import guard
from chat.management.commands.demo_setup import Command as DemoSetup
from chat.safety.originals import original_keep
from review.models import ReviewItem
from tests.factories import AnswerFactory, FeedbackFactory, QuestionFactory, ReviewItemFactory, TrainerFactory

pytestmark = pytest.mark.django_db
TYPED = "I am Maureen Thibault of 3968 Bay Street, call +1 984 182 0190. How long is a plank?"


def staff(*codenames: str) -> Client:
    user = User.objects.create_user("staff-member", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(
        content_type__app_label="chat", codename__in=["view_message", "view_feedback", "view_conversation",
                                                      *codenames]))
    client = Client()
    client.force_login(user)
    return client


def masked_question():
    """A question stored as the pipeline stores it: masked, its original sealed."""
    guarded = guard(TYPED)
    question = QuestionFactory(text=guarded.text, pii_redacted=True)
    original_keep(message_id=question.pk, sealed=guarded.original_sealed)
    return question


def test_without_the_permission_a_message_shows_only_masked_text():
    question = masked_question()
    for url in (reverse("admin:chat_message_change", args=[question.pk]),
                reverse("admin:chat_conversation_change", args=[question.conversation_id])):
        page = staff().get(url).content.decode()
        assert "[PERSON]" in page and "[PHONE]" in page
        assert "Maureen" not in page and "Bay Street" not in page and "182 0190" not in page
        User.objects.filter(username="staff-member").delete()


def test_with_the_permission_the_message_and_conversation_pages_show_what_was_typed():
    question = masked_question()
    for url in (reverse("admin:chat_message_change", args=[question.pk]),
                reverse("admin:chat_conversation_change", args=[question.conversation_id])):
        page = staff("view_pii").get(url).content.decode()
        assert "[PERSON]" in page and "Maureen Thibault of 3968 Bay Street" in page
        User.objects.filter(username="staff-member").delete()


def test_a_feedback_comment_shows_its_original_to_the_permission_only():
    feedback = FeedbackFactory(comment="Ask [PERSON] instead.")
    original_keep(feedback_id=feedback.pk, original="Ask Maureen Thibault instead.")
    url = reverse("admin:chat_feedback_change", args=[feedback.pk])
    assert "Maureen" not in staff().get(url).content.decode()
    User.objects.filter(username="staff-member").delete()
    assert "Ask Maureen Thibault instead." in staff("view_pii").get(url).content.decode()


def test_the_review_page_gives_a_trainer_the_typed_question_only_with_the_permission():
    DemoSetup()._groups()
    question = masked_question()
    item = ReviewItemFactory(message=AnswerFactory(reply_to=question, conversation=question.conversation),
                             reasons=[ReviewItem.Reason.LOW_CONFIDENCE])
    trainer = TrainerFactory()
    client = Client()
    client.force_login(trainer)
    url = reverse("admin:review_reviewitem_review", args=[item.pk])
    response = client.get(url)
    assert response.status_code == 200 and response.context["question_typed"] is None
    assert "Maureen" not in response.content.decode()
    trainer.user_permissions.add(Permission.objects.get(content_type__app_label="chat", codename="view_pii"))
    trainer = User.objects.get(pk=trainer.pk)  # permissions are cached on the instance
    client.force_login(trainer)
    assert client.get(url).context["question_typed"] == TYPED


def test_the_review_queue_list_masks_text_stored_before_masking_covered_it():
    DemoSetup()._groups()
    question = QuestionFactory(text="Mail me at maureen.thibault@example.com about planks")  # an old row
    ReviewItemFactory(message=AnswerFactory(reply_to=question, conversation=question.conversation))
    client = Client()
    client.force_login(TrainerFactory())
    page = client.get(reverse("admin:review_reviewitem_changelist")).content.decode()
    assert "[EMAIL]" in page and "maureen.thibault@example.com" not in page
