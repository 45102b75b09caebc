"""Storing a question and its empty answer (chat/services.turn_start) in a conversation that goes on.
Real PostgreSQL."""

import pytest

from chat import services
from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)


def store(text, conversation_id=None, visitor="v1", client_msg_id=""):
    return services.turn_start(visitor_id=visitor, conversation_id=conversation_id, channel=Conversation.Channel.API,
                               text=text, client_msg_id=client_msg_id, pii_redacted=False)


def sequences(conversation_id):
    return list(Message.objects.filter(conversation_id=conversation_id).order_by("sequence")
                .values_list("sequence", "role", "text"))


def test_follow_ups_are_stored_after_the_last_message_with_their_answers():
    first = store("How do I squat?")
    second = store("How many sets?", first.conversation_id)
    third = store("And reps?", first.conversation_id)

    assert (second.question.sequence, second.answer.sequence, third.question.sequence) == (3, 4, 5)
    assert sequences(first.conversation_id) == [
        (1, "user", "How do I squat?"), (2, "assistant", ""), (3, "user", "How many sets?"), (4, "assistant", ""),
        (5, "user", "And reps?"), (6, "assistant", "")]
    assert third.answer.reply_to_id == third.question.pk and not third.repeated


def test_a_question_to_another_visitors_conversation_stores_nothing():
    theirs = store("How do I squat?", visitor="alice")

    with pytest.raises(services.NotFound):
        store("What did alice ask?", theirs.conversation_id, visitor="mallory")

    assert len(sequences(theirs.conversation_id)) == 2
    assert Conversation.objects.get(pk=theirs.conversation_id).visitor_id == "alice"


def test_a_re_sent_follow_up_is_recognised_not_stored_twice():
    first = store("How do I squat?")
    sent = store("How many sets?", first.conversation_id, client_msg_id="m2")
    again = store("How many sets?", first.conversation_id, client_msg_id="m2")

    assert again.repeated and again.question.pk == sent.question.pk
    assert len(sequences(first.conversation_id)) == 4
