"""The offline provider: with no LLM configured (or a budget spent), answer in a short paragraph of the
retrieved sentences that answer the question, each cited, streamed like a model's answer. Honest and
free, never creative: it selects, it does not write, and so it cannot translate: an answer from excerpts
in another language than the conversation's says so first, in the visitor's language when it is one of
CHAT_LANGUAGES and this module has the sentence in it (else in English)."""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace

from django.conf import settings

from knowledge.chunking import split_sentences
from knowledge.selectors import SearchHit
from knowledge.tokens import count_tokens

from .types import Delta

OFFLINE_MODEL = "offline"
NOT_FOUND = "I could not find an answer to that in the knowledge base."
CANNOT_TRANSLATE = "I cannot translate: this is the knowledge base's text as it is written."
# The two sentences the provider writes itself, per language (ISO 639-1).
_PHRASES: dict[str, tuple[str, str]] = {
    "en": (NOT_FOUND, CANNOT_TRANSLATE),
    "de": ("Dazu habe ich in der Wissensdatenbank keine Antwort gefunden.",
           "Ich kann nicht übersetzen: Dies ist der Text der Wissensdatenbank, wie er geschrieben ist."),
    "fr": ("Je n'ai pas trouvé de réponse à cette question dans la base de connaissances.",
           "Je ne peux pas traduire : voici le texte de la base de connaissances tel qu'il est écrit."),
    "es": ("No he encontrado una respuesta a eso en la base de conocimientos.",
           "No puedo traducir: este es el texto de la base de conocimientos tal como está escrito."),
    "it": ("Non ho trovato una risposta a questa domanda nella base di conoscenza.",
           "Non posso tradurre: questo è il testo della base di conoscenza così come è scritto."),
    "nl": ("Ik heb daar geen antwoord op gevonden in de kennisbank.",
           "Ik kan niet vertalen: dit is de tekst van de kennisbank zoals die geschreven is."),
    "pt": ("Não encontrei uma resposta para isso na base de conhecimento.",
           "Não consigo traduzir: este é o texto da base de conhecimento tal como está escrito."),
    "sv": ("Jag hittade inget svar på det i kunskapsbasen.",
           "Jag kan inte översätta: det här är kunskapsbasens text som den är skriven."),
}
# Below this cosine similarity the best chunk is about something else.
MIN_SCORE = 0.30
# Documents below the best one's dense score by more than this are about something else.
OTHER_DOCUMENT_GAP = 0.08

_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    "a an and are as at be by can do does did for from has have how i in is it its me my of on or should the "
    "to was were what when where which who whom whose why will with you your this that these those there "
    "into about than then so if not no".split()
)
# "Level: expert", "Primary muscles: quadriceps": a document's fields, a line each (knowledge/chunking.py
# writes mapped facts so). One answers a question only when the question names the field.
_FIELD_LINE = re.compile(r"^(?P<name>[A-Z][\w ()/-]{0,40}):\s+\S")


@dataclass(frozen=True)
class ExtractiveAnswer:
    text: str
    cited: tuple[int, ...]  # 1-based positions in the hits list


@dataclass(frozen=True)
class _Sentence:
    text: str
    number: int  # the hit it comes from, 1-based
    document_id: int
    terms: frozenset[str]
    field: bool  # a field line the question asks about ("Level: expert")


def sentence_count() -> int:
    return settings.OFFLINE_ANSWER_SENTENCES


def _stem(word: str) -> str:
    """Plural and tense endings off, so "founded" meets "found", "muscles" meets "muscle": a light touch,
    since a wrong merge costs less here than a missed one."""
    for suffix in ("ies", "ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def _terms(text: str) -> frozenset[str]:
    return frozenset(_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS)


def _field_asked(line: str, asked: frozenset[str]) -> bool | None:
    """None: not a field line; else whether the question names the field ("what level…", "which muscles…")."""
    match = _FIELD_LINE.match(line)
    if match is None or len(line) > 120:
        return None
    return bool(_terms(match.group("name")) & asked)


def _sentences(question_terms: frozenset[str], hits: Sequence[tuple[int, SearchHit]]) -> list[_Sentence]:
    """The hits' sentences in reading order (a document's chunks by position), without titles, without
    the sentences consecutive chunks share, and without field lines the question does not ask about."""
    found: list[_Sentence] = []
    seen: set[str] = set()
    for number, hit in sorted(hits, key=lambda item: (item[1].document_id, item[1].chunk_id)):
        for line in hit.text.splitlines():
            line = line.strip()
            asked = _field_asked(line, question_terms)
            if not line or line == hit.title or asked is False:
                continue
            for text in [line] if asked else split_sentences(line):
                if text not in seen:
                    seen.add(text)
                    found.append(_Sentence(text, number, hit.document_id, _terms(text), bool(asked)))
    return found


def _scores(question_terms: frozenset[str], sentences: list[_Sentence]) -> list[float]:
    """How much of the question a sentence holds: its shared terms, each weighted by how rare it is among
    these sentences (the document's topic word, in every sentence, says little), over a gentle length norm."""
    frequency = Counter(term for s in sentences for term in s.terms & question_terms)
    total = len(sentences)
    weight = {term: math.log(1 + total / count) for term, count in frequency.items()}
    return [sum(weight[t] for t in s.terms & question_terms) / (1 + len(s.terms)) ** 0.25 for s in sentences]


def _chosen(sentences: list[_Sentence], scores: list[float], limit: int) -> list[_Sentence]:
    """From the best sentence's document: its two best sentences in reading order (what a reader wants
    first), then the best one's neighbours (a procedure's next step, what it refers back to), `limit` in
    all. A best field line is answered with the fields the question asks about. Nothing matching: the
    opening sentences."""
    order = sorted(range(len(sentences)), key=lambda i: (-scores[i], i))
    best = sentences[order[0]]
    if scores[order[0]] <= 0:
        return sentences[:limit]
    document = [s for s in sentences if s.document_id == best.document_id]
    if best.field:
        return [s for s in document if s.field][:limit]
    prose = [s for s in document if not s.field]
    ranked = [sentences[i] for i in order if sentences[i] in prose]
    lead = sorted(ranked[:min(2, limit)], key=prose.index)
    at = prose.index(best)
    neighbours = [prose[j] for j in (at + 1, at - 1) if 0 <= j < len(prose) and prose[j] not in lead]
    return (lead + neighbours)[:limit]


def _paragraph(chosen: list[_Sentence]) -> str:
    """One paragraph; a mark after the last of each run of sentences from the same excerpt."""
    parts = []
    for i, sentence in enumerate(chosen):
        last_of_run = i + 1 == len(chosen) or chosen[i + 1].number != sentence.number
        parts.append(f"{sentence.text} [{sentence.number}]" if last_of_run else sentence.text)
    return " ".join(parts)


def compose_answer(question: str, hits: Sequence[SearchHit], language: str = "") -> ExtractiveAnswer:
    """`language`: the conversation's (ISO code); empty: the answer's language is not checked."""
    answer = _selected(question, hits)
    if not language:
        return answer
    not_found, cannot_translate = _phrases(language)
    if not answer.cited:
        return replace(answer, text=not_found)
    if any(_base(hits[n - 1].language or settings.KNOWLEDGE_DEFAULT_LANGUAGE) != _base(language) for n in answer.cited):
        return replace(answer, text=f"{cannot_translate}\n\n{answer.text}")
    return answer


def _selected(question: str, hits: Sequence[SearchHit]) -> ExtractiveAnswer:
    if not hits or hits[0].dense_score < MIN_SCORE:
        return ExtractiveAnswer(NOT_FOUND, ())
    close = [(n, h) for n, h in enumerate(hits, start=1)
             if h.document_id == hits[0].document_id or h.dense_score >= hits[0].dense_score - OTHER_DOCUMENT_GAP]
    question_terms = _terms(question)
    sentences = _sentences(question_terms, close)
    if not sentences:
        return ExtractiveAnswer(NOT_FOUND, ())
    chosen = _chosen(sentences, _scores(question_terms, sentences), sentence_count())
    return ExtractiveAnswer(_paragraph(chosen), tuple(sorted({s.number for s in chosen})))


def _base(language: str) -> str:
    return language.lower().split("-")[0]


def _phrases(language: str) -> tuple[str, str]:
    """Not found, cannot translate: in the visitor's language when it is a configured one, else English."""
    base = _base(language)
    configured = {_base(code) for code in settings.CHAT_LANGUAGES}
    return _PHRASES[base] if base in configured and base in _PHRASES else _PHRASES["en"]


async def stream_answer(answer: ExtractiveAnswer, prompt_tokens: int) -> AsyncIterator[Delta]:
    for piece in re.findall(r"\S+\s*", answer.text):
        yield Delta(text=piece, model=OFFLINE_MODEL)
        await asyncio.sleep(0)  # let other chats stream too
    yield Delta(model=OFFLINE_MODEL, tokens_in=prompt_tokens, tokens_out=count_tokens(answer.text))
