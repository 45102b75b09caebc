"""A follow-up made into a question that stands alone, before reuse and retrieval read it.

"What muscles does it work?" after a squat answer means "What muscles does the barbell squat work?":
search, the answer cache and approved answers must all see that, or every conversation past its
first question loses its thread.

Offline (no generation): the follow-up plus the conversation's salient words, the earlier
questions' words that this knowledge base can tell apart (high IDF, recent turns first, the
opening question kept) and the titles the last answer cited. The query's own words stay first and
are most of it, so the embedding and the full-text rank lean on them; bench/conversation.py chose
this against a mixed vector and other weights (BENCHMARKS.md).

With an LLM configured: one short rewrite call (STANDALONE_MODEL, STANDALONE_TIMEOUT_SECONDS); on
any failure or timeout, the offline form.

A question that already stands alone is left as it is (neither method runs): it has no word that
points back ("it", "they", "that one", "what about") and either enough words of its own or one
that names documents of the knowledge base.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from django.conf import settings

from knowledge.contextual import WordWeight, word_weights
from knowledge.selectors import FullTextSide, search_full_text

from .db import db_call
from .llm.gateway import get_gateway, llm_enabled
from .llm.types import ChatMessage
from .models import Message

logger = logging.getLogger(__name__)

Method = Literal["unchanged", "offline", "llm"]


@dataclass(frozen=True)
class StandaloneQuery:
    """What reuse, the embedding and the search read instead of the question as typed."""

    text: str  # the question itself when unchanged
    rewritten: bool
    method: Method
    context_words: tuple[str, ...] = field(default=())  # offline: the words added from the conversation
    context_lexemes: frozenset[str] = field(default=frozenset())  # theirs, weighed down in the full-text rank


# Words that point back to something said before.
_POINTERS = frozenset(
    "it its itself they them their theirs themselves this that these those he him his she her hers "
    "there one ones such same former latter other others another else also too both".split()
)
# "the two types", "the three of them": a number after "the" counts what was said before.
_COUNTED_BACK = re.compile(r"\bthe (two|three|four)\b", re.I)
# Openings that continue the previous question with a new ending.
_CONTINUATIONS = re.compile(r"^\s*(and|or|but|so|also|what about|how about|what else|why|why not|how come)\b", re.I)
# Words of talk, not of a subject: rare in any knowledge base, so their IDF would rank them first.
_TALK = frozenset(
    "really okay ok wow cool hmm ahh ah oh yes yeah no nope thanks thank please sorry hi hello well "
    "heard hear think thought know knew want wanted like liked tell told say said mention mentioned sound sounds "
    "seem seems interesting friend today wonder wondering saw see seen meant mean talk let lets got get give "
    "would could should maybe quite sure good great nice lot lots kind thing things something anything "
    "example examples way more much many some any first second next last".split()
)
# "it's", "that's", "isn't", "I've": the word before the apostrophe is what counts.
_CLITIC = re.compile(r"(n['’]t|['’](s|re|ve|d|ll|m))$", re.I)
_WORD = re.compile(r"[^\W\d_][\w'’-]*")  # from a letter: "[1]", a citation mark, is not a word
# What the PII guard put in place of a name or an address ("[PERSON]"): it says nothing of the subject.
_PLACEHOLDER = re.compile(r"\[[A-Z_]+\]")


def words(text: str) -> list[str]:
    """Its words without clitics ("that's": "that"), talk ("really", "heard") and PII placeholders left out."""
    found = (_CLITIC.sub("", w) for w in _WORD.findall(_PLACEHOLDER.sub(" ", text)))
    return [w for w in found if w and w.lower() not in _TALK]


def unchanged(question: str) -> StandaloneQuery:
    return StandaloneQuery(text=question, rewritten=False, method="unchanged")


# --- does it stand alone? -------------------------------------------------------------------------


def points_back(question: str) -> bool:
    lowered = [_CLITIC.sub("", w).lower() for w in _WORD.findall(question)]
    return (bool(_CONTINUATIONS.match(question)) or bool(_COUNTED_BACK.search(question))
            or any(w in _POINTERS for w in lowered))


def stands_alone(question: str, own: Sequence[WordWeight]) -> bool:
    """`own`: the question's word weights. Enough words of its own, or a rare one that names
    documents, and nothing that points back."""
    if points_back(question):
        return False
    known = {w.lexeme for w in own if w.chunks > 0}
    named = any(w.names_documents and w.idf >= settings.STANDALONE_NAMING_MIN_IDF for w in own)
    return named or len(known) >= settings.STANDALONE_OWN_WORDS


# --- offline --------------------------------------------------------------------------------------


def _earlier_questions(earlier: Sequence[Message]) -> list[str]:
    """Most recent first."""
    return [m.text for m in reversed(earlier) if m.role == Message.Role.USER and m.text.strip()]


def _cited_titles(earlier: Sequence[Message]) -> list[str]:
    """The titles the last answer cited, best first."""
    for message in reversed(earlier):
        if message.role != Message.Role.USER:
            return [s["title"] for s in message.sources or [] if isinstance(s, dict) and s.get("title")]
    return []


def _context_sources(earlier: Sequence[Message]) -> list[tuple[float, list[str]]]:
    """(weight, words) of each earlier text that may hold the subject: recent questions weigh more,
    the opening question (which usually sets the subject) keeps a floor, the titles the last answer
    cited count as the most recent turn."""
    questions = _earlier_questions(earlier)
    decay, floor = settings.STANDALONE_RECENCY_DECAY, settings.STANDALONE_OPENING_WEIGHT
    sources = [(decay**age, words(text)) for age, text in enumerate(questions)]
    if questions:
        sources[-1] = (max(sources[-1][0], floor), sources[-1][1])
    titles = _cited_titles(earlier)[: settings.STANDALONE_CITED_TITLES]
    sources += [(settings.STANDALONE_TITLE_WEIGHT, words(title)) for title in titles]
    return sources


def _parallel_raised(
    own: Sequence[WordWeight], sources: list[tuple[float, list[str]]], weights: dict[str, list[WordWeight]]
) -> list[tuple[float, list[str]]]:
    """An earlier question that shares a telling word with this one ("What about the causes in Asia?" after
    "What are the causes of stigma in Africa?") asked the same of another subject: its words weigh as much as
    the last turn's (STANDALONE_PARALLEL_WEIGHT), whatever its age. A word counts when it names documents
    (STANDALONE_NAMING_MIN_IDF): over "set" or "use" every earlier question would count as the last."""
    have = {w.lexeme for w in own if w.chunks > 0 and w.idf >= settings.STANDALONE_NAMING_MIN_IDF}
    raised = settings.STANDALONE_PARALLEL_WEIGHT
    return [(max(weight, raised) if have & {w.lexeme for word in text_words for w in weights.get(word, [])} else weight,
             text_words) for weight, text_words in sources]


def context_words(
    own: Sequence[WordWeight], sources: Sequence[tuple[float, list[str]]], weights: dict[str, list[WordWeight]]
) -> dict[str, str]:
    """The conversation's most salient words the question lacks: each lexeme scored by its IDF times
    the summed weights of the texts it is in (the subject recurs; a passing word does not); written
    as first seen: {lexeme: word}."""
    have = {w.lexeme for w in own}
    score: dict[str, float] = {}
    written: dict[str, str] = {}
    for weight, text_words in sources:
        for lexeme, w in {w.lexeme: w for word in text_words for w in weights.get(word, [])}.items():
            if lexeme in have or w.chunks == 0 or w.idf < settings.STANDALONE_MIN_IDF:
                continue
            score[lexeme] = score.get(lexeme, 0.0) + weight * w.idf
            written.setdefault(lexeme, w.word)
    chosen = sorted(score, key=lambda lexeme: -score[lexeme])[: settings.STANDALONE_CONTEXT_WORDS]
    return {lexeme: written[lexeme] for lexeme in chosen}


def standalone_offline(*, question: str, earlier: Sequence[Message], language: str | None = None) -> StandaloneQuery:
    """The offline method, on a database thread (one statement)."""
    if not _earlier_questions(earlier):
        return unchanged(question)
    sources = _context_sources(earlier)
    every = list(dict.fromkeys([*words(question), *(w for _, text_words in sources for w in text_words)]))
    weights: dict[str, list[WordWeight]] = {}
    for weight in word_weights(every, language):
        weights.setdefault(weight.word, []).append(weight)
    own = [w for word in dict.fromkeys(words(question)) for w in weights.get(word, [])]
    if stands_alone(question, own):
        return unchanged(question)
    added = context_words(own, _parallel_raised(own, sources, weights), weights)
    if not added:
        return unchanged(question)
    written = tuple(dict.fromkeys(added.values()))
    return StandaloneQuery(
        text=f"{question.rstrip()} ({' '.join(written)})", rewritten=True, method="offline",
        context_words=written, context_lexemes=frozenset(added),
    )


def standalone_full_text(query: StandaloneQuery, *, k: int | None = None) -> FullTextSide:
    """The full-text half of the search for `query` (hand it to knowledge.selectors.search with the
    same text): the words taken from the conversation rank at STANDALONE_CONTEXT_WEIGHT of their IDF."""
    full_text = search_full_text(query.text, k=k)
    if not query.context_lexemes:
        return full_text
    weight = settings.STANDALONE_CONTEXT_WEIGHT
    terms = [replace(t, idf=t.idf * weight) if t.lexeme in query.context_lexemes else t for t in full_text.terms]
    return FullTextSide(terms, full_text.ids)


# --- with an LLM ----------------------------------------------------------------------------------

REWRITE_INSTRUCTION = (
    "Rewrite the user's last question so that it can be understood without the conversation: replace "
    "words such as 'it', 'they' or 'that' with what they refer to and add what the question leaves out. "
    "Keep its language and meaning; do not answer it. Reply with the rewritten question only."
)
# What of the conversation the rewrite reads: the last turns, each answer cut short.
REWRITE_TURNS = 6
REWRITE_ANSWER_CHARS = 400


def rewrite_messages(question: str, earlier: Sequence[Message]) -> list[ChatMessage]:
    lines = []
    for message in list(earlier)[-REWRITE_TURNS:]:
        if message.role == Message.Role.USER:
            lines.append(f"User: {message.text}")
        else:
            lines.append(f"Assistant: {message.text[:REWRITE_ANSWER_CHARS]}")
    conversation = "\n".join(lines)
    return [
        ChatMessage("system", REWRITE_INSTRUCTION),
        ChatMessage("user", f"Conversation:\n{conversation}\n\nLast question: {question}\n\nRewritten question:"),
    ]


async def _llm_rewrite(question: str, earlier: Sequence[Message]) -> str:
    model = settings.STANDALONE_MODEL or settings.LLM_MODEL
    options = {"max_tokens": settings.STANDALONE_MAX_TOKENS, "temperature": 0.0}
    pieces = [
        delta.text
        async for delta in get_gateway().stream(rewrite_messages(question, earlier), model=model, options=options)
    ]
    return _clean_rewrite("".join(pieces), question)


class UnusableRewrite(ValueError):
    pass


def _clean_rewrite(text: str, question: str) -> str:
    cleaned = text.strip().strip('"“”').strip()
    cleaned = re.sub(r"^(rewritten question|question)\s*:\s*", "", cleaned, flags=re.I).strip()
    if not cleaned or "\n" in cleaned or len(cleaned) > 3 * len(question) + 200:
        raise UnusableRewrite(f"not a question: {text[:80]!r}")
    return cleaned


# --- the entry point ------------------------------------------------------------------------------


async def standalone_query(
    *, question: str, earlier: Sequence[Message], language: str | None = None
) -> StandaloneQuery:
    """The question as search and reuse should read it. Never raises for want of an LLM: a failed or
    slow rewrite falls back to the offline form, a failed offline one to the question itself."""
    try:
        offline = await db_call(standalone_offline)(question=question, earlier=earlier, language=language)
    except Exception:
        logger.exception("making a standalone query failed; searching with the question as asked")
        return unchanged(question)
    if not offline.rewritten or not llm_enabled() or not settings.STANDALONE_LLM:
        return offline
    try:
        text = await asyncio.wait_for(_llm_rewrite(question, earlier), settings.STANDALONE_TIMEOUT_SECONDS)
    except Exception as exc:  # TimeoutError included: the offline form is ready
        logger.warning("rewriting the follow-up with the LLM failed (%r); the offline form is used", exc)
        return offline
    return StandaloneQuery(text=text, rewritten=text != question, method="llm")
