"""Offline detection of a visitor asking for a person, and the handoff reason it implies: a table of
messages as visitors write them, in the demo's languages, and of messages that only mention people."""

from __future__ import annotations

import pytest

from chat.handoff_intent import person_requested
from review.models import Handoff

Reason = Handoff.Reason
ASKED, ACCOUNT, UNHAPPY, URGENT = Reason.ASKED, Reason.ACCOUNT, Reason.UNHAPPY, Reason.URGENT

ASKS = [
    # English
    ("Can I talk to a human?", ASKED),
    ("I want to speak to a real person please", ASKED),
    ("can i speak to someone", ASKED),
    ("Let me talk to an actual person.", ASKED),
    ("Connect me with someone from your team", ASKED),
    ("Please transfer me to a live agent", ASKED),
    ("I'd like a human, not a bot.", ASKED),
    ("human please", ASKED),
    ("Agent!", ASKED),
    ("Is there a person I can talk to?", ASKED),
    ("No, I want to talk to a human", ASKED),
    ("Can I speak to your manager", ASKED),
    ("This is useless, let me talk to a human", UNHAPPY),
    ("I'm really frustrated, I need a real person now", UNHAPPY),
    ("I was charged twice this month, can I speak with someone?", ACCOUNT),
    ("I need to talk to someone about deleting my personal data", ACCOUNT),
    ("It's an emergency, connect me to a person right away", URGENT),
    ("Someone threatened me in the chat, I need to speak to a human", URGENT),
    ("I’m not getting answers I want to talk to a person", ASKED),
    # German
    ("Kann ich bitte mit einem Menschen sprechen?", ASKED),
    ("Ich möchte mit einem Mitarbeiter reden.", ASKED),
    ("Verbinden Sie mich bitte mit einem echten Menschen", ASKED),
    ("Ich will einen echten Menschen, keinen Bot!", ASKED),
    ("Gibt es hier jemanden, mit dem ich sprechen kann?", ASKED),
    ("Meine Rechnung ist falsch, ich möchte mit jemandem aus dem Support sprechen", ACCOUNT),
    ("Das ist total nutzlos. Mitarbeiter bitte!", UNHAPPY),
    ("Notfall! Bitte mit einer Person verbinden", URGENT),
    # French
    ("Est-ce que je peux parler à un humain ?", ASKED),
    ("Je voudrais parler avec un conseiller, s'il vous plaît", ASKED),
    ("Mettez-moi en relation avec une vraie personne", ASKED),
    ("J'ai besoin d'un humain", ASKED),
    ("Je n'arrive pas à me connecter à mon compte, je veux parler à quelqu'un", ACCOUNT),
    ("C'est nul, passez-moi un agent", UNHAPPY),
    ("C'est urgent, je dois parler à quelqu'un de votre équipe", URGENT),
    # Spanish
    ("¿Puedo hablar con una persona?", ASKED),
    ("Quiero hablar con un agente humano", ASKED),
    ("Pásame con un asesor por favor", ASKED),
    ("necesito un humano ya", ASKED),
    ("¿Hay alguien con quien pueda hablar?", ASKED),
    ("Me cobraron dos veces, quiero hablar con alguien", ACCOUNT),
    ("Estoy muy enfadado, comunícame con un operador", UNHAPPY),
    ("Es una emergencia, necesito hablar con una persona real", URGENT),
    # Italian, Dutch, Portuguese
    ("Vorrei parlare con un operatore", ASKED),
    ("Kan ik met een medewerker spreken?", ASKED),
    ("Ik wil een mens spreken", ASKED),
    ("Quero falar com um atendente", ASKED),
    ("Posso falar com uma pessoa real?", ASKED),
]

DOES_NOT_ASK = [
    "Is the human body able to recover in 24 hours?",
    "Does human growth hormone help?",
    "I don't want to talk to a person, just answer the question.",
    "No need to speak to a human, you're doing great",
    "I do not want to be transferred to an agent",
    "How do I talk to a person with dementia about their diet?",
    "Can a person do this every day?",
    "I need a human spotter for this?",
    "Should I talk to someone before starting?",
    "I talked to a person at the front desk yesterday and they said it was fine.",
    "Is a human coach better than an app?",
    "Give me a plan for a person who sits all day",
    "Do I need a person to spot me?",
    "The staff at my gym are rude, what should I do?",
    "Should I speak to the staff at my gym about it?",
    "Is it normal to feel like a different person after a week?",
    "What is the human body made of?",
    "Ist der menschliche Körper dafür gemacht?",
    "Wie viel Protein braucht ein Mensch am Tag?",
    "Ich will nicht mit einem Menschen sprechen, antworte einfach.",
    "Le corps humain peut-il récupérer en un jour ?",
    "Je ne veux pas parler à un humain",
    "¿Cuánta proteína necesita una persona al día?",
    "No quiero hablar con una persona, responde tú",
    "¿Cómo hablar con una persona mayor sobre el ejercicio?",
    "El cuerpo humano necesita descanso",
    "Thanks, that helps a lot!",
    "",
]


@pytest.mark.parametrize(("text", "reason"), ASKS)
def test_it_detects_a_request_for_a_person_and_its_reason(text: str, reason: str) -> None:
    assert person_requested(text) == reason


@pytest.mark.parametrize("text", DOES_NOT_ASK)
def test_it_leaves_questions_that_only_mention_people_to_the_assistant(text: str) -> None:
    assert person_requested(text) is None


def test_the_table_covers_the_languages_and_reasons() -> None:
    assert len(ASKS) >= 25 and len(DOES_NOT_ASK) >= 20
    assert {reason for _, reason in ASKS} == {ASKED, ACCOUNT, UNHAPPY, URGENT}


def test_it_only_uses_the_configured_languages(settings) -> None:
    settings.CHAT_LANGUAGES = ["en"]
    assert person_requested("Kann ich mit einem Menschen sprechen?") is None
    assert person_requested("Can I talk to a human?") == ASKED
