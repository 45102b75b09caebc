"""The retention beat job deletes conversations idle for more than RETENTION_DAYS, with what hangs on them,
and nothing else; it records what it deleted."""

from datetime import timedelta

import pytest
from django.utils import timezone

from chat.memory import profile_update
from chat.models import CacheEntry, Conversation, ErasureRecord, Message, VisitorProfile
from chat.tasks import conversations_retention
from monitoring.models import AnswerFact
from review.models import ApprovedAnswer, ReviewItem
from tests.factories import AnswerFactory, CacheEntryFactory, ConversationFactory, FeedbackFactory, ReviewItemFactory

pytestmark = pytest.mark.django_db


def idle_for(conversation: Conversation, days: int) -> Conversation:
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now() - timedelta(days=days))
    return conversation


def answered(conversation: Conversation) -> Message:
    answer = AnswerFactory(conversation=conversation)
    AnswerFact.objects.create(message_id=answer.pk, conversation_id=conversation.pk, status="complete",
                              visitor_id=conversation.visitor_id)
    return answer


def test_it_deletes_only_conversations_idle_past_retention_days_and_what_hangs_on_them(settings):
    settings.RETENTION_DAYS = 30
    old = idle_for(ConversationFactory(visitor_id="v-old"), 31)
    recent = idle_for(ConversationFactory(visitor_id="v-old"), 29)
    old_answer, recent_answer = answered(old), answered(recent)
    FeedbackFactory(message=old_answer)
    ReviewItemFactory(message=old_answer)
    CacheEntryFactory(message=old_answer)
    ApprovedAnswer.objects.create(question="q", answer="a", source_message=old_answer)

    counts = conversations_retention()

    assert list(Conversation.objects.all()) == [recent]
    assert set(Message.objects.values_list("conversation_id", flat=True)) == {recent.pk}
    assert list(AnswerFact.objects.values_list("message_id", flat=True)) == [recent_answer.pk]
    assert not ReviewItem.objects.exists() and not CacheEntry.objects.exists()
    # a trainer's work stays, no longer linked to the deleted message (a visitor's own erasure deletes it)
    assert list(ApprovedAnswer.objects.values_list("source_message", flat=True)) == [None]
    assert counts["chat.Conversation"] == 1 and counts["monitoring.AnswerFact"] == 1
    record = ErasureRecord.objects.get()
    assert record.requested_by == ErasureRecord.Requester.RETENTION and record.visitor_hash == ""
    assert record.counts == counts


def test_zero_days_keeps_everything(settings):
    settings.RETENTION_DAYS = 0
    answered(idle_for(ConversationFactory(), 5000))

    assert conversations_retention() == {}
    assert Conversation.objects.count() == 1 and not ErasureRecord.objects.exists()


def test_a_run_with_nothing_to_delete_records_nothing(settings):
    settings.RETENTION_DAYS = 30
    answered(ConversationFactory())

    assert conversations_retention() == {}
    assert not ErasureRecord.objects.exists()


def test_the_profile_of_a_visitor_idle_as_long_and_without_conversations_goes_too(settings):
    settings.RETENTION_DAYS = 30
    profile_update(visitor_id="v-gone", data={"facts": [{"label": "goal", "value": "run"}]}, replace=False)
    profile_update(visitor_id="v-here", data={"facts": [{"label": "goal", "value": "swim"}]}, replace=False)
    VisitorProfile.objects.update(updated_at=timezone.now() - timedelta(days=40))
    idle_for(ConversationFactory(visitor_id="v-gone"), 40)
    ConversationFactory(visitor_id="v-here")

    conversations_retention()

    assert list(VisitorProfile.objects.values_list("visitor_id", flat=True)) == ["v-here"]
