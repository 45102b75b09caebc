"""Offline mode answers from the knowledge base as it is written: from excerpts in another language than
the conversation's it says first that it cannot translate, in the visitor's language when it is a
configured one (else English)."""

import re

import pytest
from channels.db import database_sync_to_async as in_db

from chat.llm.offline import CANNOT_TRANSLATE, NOT_FOUND, compose_answer
from chat.models import Message
from knowledge.selectors import SearchHit
from tests.chat.test_pipeline import ask

SQUAT = SearchHit(
    chunk_id=1, document_id=1, title="Barbell Squat", url="/kb/documents/1/", score=0.8, dense_score=0.8,
    text="Barbell Squat\n\nSet the bar on your back. Squat down until your thighs are parallel. "
         "Drive up through your heels.", language="en",
)
GERMAN_NOTE = "Ich kann nicht übersetzen: Dies ist der Text der Wissensdatenbank, wie er geschrieben ist."


def test_an_answer_in_the_conversations_language_is_left_as_it_is():
    english = compose_answer("How do I squat with a barbell?", [SQUAT], language="en")
    assert english == compose_answer("How do I squat with a barbell?", [SQUAT])  # what the benchmark measures
    assert CANNOT_TRANSLATE not in english.text and english.text.startswith("Set the bar")


def test_a_german_visitor_is_told_in_german_that_the_english_excerpts_are_not_translated():
    answer = compose_answer("Wie mache ich eine Kniebeuge mit der Langhantel?", [SQUAT], language="de")
    note, paragraph = answer.text.split("\n\n")
    assert note == GERMAN_NOTE
    assert paragraph.startswith("Set the bar on your back.") and paragraph.endswith("[1]")
    assert answer.cited == (1,)


def test_a_language_that_is_not_configured_gets_the_sentence_in_english(settings):
    settings.CHAT_LANGUAGES = ["en", "fr"]
    assert compose_answer("Wie mache ich eine Kniebeuge?", [SQUAT], language="de").text.startswith(CANNOT_TRANSLATE)
    assert compose_answer("Hur gör jag en knäböj?", [SQUAT], language="sv").text.startswith(CANNOT_TRANSLATE)


def test_excerpts_in_the_visitors_language_need_no_note_and_nothing_found_is_said_in_it(settings):
    german = SearchHit(chunk_id=2, document_id=2, title="Kniebeuge", url="", score=0.8, dense_score=0.8,
                       text="Kniebeuge\n\nDie Stange auf den Rücken legen.", language="de")
    assert compose_answer("Wie mache ich eine Kniebeuge?", [german], language="de").text == (
        "Die Stange auf den Rücken legen. [1]")
    nothing = compose_answer("Wie mache ich eine Kniebeuge?", [], language="de")
    assert nothing.text == "Dazu habe ich in der Wissensdatenbank keine Antwort gefunden." and nothing.cited == ()
    assert compose_answer("How?", [], language="en").text == NOT_FOUND


@pytest.mark.django_db(transaction=True)
async def test_offline_a_german_question_over_the_english_knowledge_base_says_it_cannot_translate(kb):
    turn, end = await ask("Wie mache ich Kniebeugen (Squat) mit der Langhantel?", visitor="hans")
    answer = await in_db(Message.objects.get)(pk=turn.answer_id)
    assert answer.model == "offline" and answer.text.startswith(GERMAN_NOTE + "\n\n")
    assert end["sources"] and re.search(r"\[\d\]$", answer.text)  # the answer, cited, as the knowledge base has it
