"""What the model is sent: one user message with the reference data and then the question, roles that
alternate (the chat templates of Mistral or Gemma models on vLLM or llama.cpp reject two user messages in
a row), and the language to answer in, in the system message."""

import pytest
from channels.db import database_sync_to_async as in_db

from chat.context import language_instruction
from chat.models import Message
from tests.chat.test_pipeline import ask
from tests.factories import AnswerFactory, ConversationFactory, QuestionFactory

pytestmark = pytest.mark.django_db(transaction=True)


def sent_with(online, question: str) -> list[dict]:
    """The messages of the last answer call (the one with reference data), checked to end with the question's
    last word (the words before it may be masked as personal data)."""
    messages = next(r["messages"] for r in reversed(online.script.requests)
                    if r["messages"][-1]["content"].startswith("<reference_data>"))
    assert messages[-1]["content"].endswith(question.split()[-1])
    return messages


async def test_a_german_question_reaches_the_model_with_the_instruction_to_answer_in_german(kb, online):
    question = "Wie mache ich eine Kniebeuge mit der Langhantel?"
    online.script.answers.append("Halte den Rücken gerade [1].")
    await ask(question, visitor="hans")

    system, last = sent_with(online, question)
    assert system["role"] == "system" and "Answer in German" in system["content"]
    assert "Kniebeuge" not in system["content"]  # the visitor's words stay in the user message
    assert last["role"] == "user" and last["content"].startswith("<reference_data>")


async def test_an_english_conversation_is_answered_in_english(kb, online):
    await ask("How do I do a barbell squat?")
    system = sent_with(online, "How do I do a barbell squat?")[0]["content"]
    assert "Answer in English" in system and "German" not in system


def test_a_regional_code_is_named_by_its_language_and_an_unknown_one_by_the_visitors_own():
    assert "Answer in Brazilian Portuguese" in language_instruction("pt-br")
    assert "Answer in German" in language_instruction("de-AT")
    unknown = language_instruction("xx")
    assert "the language the visitor writes in" in unknown and "xx" not in unknown
    assert language_instruction("") == unknown


async def test_roles_alternate_after_a_failed_answer_and_a_trainers_reply(kb, online, settings):
    settings.STANDALONE_LLM = False  # only the answer call reaches the server
    settings.CHAT_HISTORY_TURNS = 6

    @in_db
    def conversation_with_a_failed_answer_and_a_trainers_reply():
        conversation = ConversationFactory(visitor_id="v1")
        first = QuestionFactory(conversation=conversation, sequence=1, text="How do I do a plank?")
        AnswerFactory(conversation=conversation, reply_to=first, sequence=2, status=Message.Status.FAILED)
        second = QuestionFactory(conversation=conversation, sequence=3, text="How long should I hold it?")
        AnswerFactory(conversation=conversation, reply_to=second, sequence=4, text="Thirty seconds [1].")
        AnswerFactory(conversation=conversation, reply_to=second, sequence=5, role=Message.Role.HUMAN,
                      text="Start with twenty.")
        return conversation

    conversation = await conversation_with_a_failed_answer_and_a_trainers_reply()
    await ask("And how many sets?", conversation_id=conversation.pk)

    messages = sent_with(online, "And how many sets?")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == "How do I do a plank?\n\nHow long should I hold it?"
    assert messages[2]["content"] == "Thirty seconds [1].\n\nStart with twenty."


async def test_the_verbatim_turns_open_with_a_question(kb, online, settings):
    settings.STANDALONE_LLM = False
    settings.CHAT_HISTORY_TURNS = 3  # would open with the first answer
    online.script.answers.extend(["Squat deep [1].", "Hold it [1].", "Three sets [1]."])
    first, _ = await ask("How do I do a barbell squat?")
    await ask("How do I do a plank?", conversation_id=first.conversation_id)
    await ask("How many sets?", conversation_id=first.conversation_id)

    messages = sent_with(online, "How many sets?")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == "How do I do a plank?"
    summary = messages[-1]["content"].split("<conversation_summary>")[1]  # the first answer: folded, not lost
    assert "Squat deep" in summary
