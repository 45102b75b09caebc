"""The offline provider: with no LLM configured, answer with the best-matching sentences of
the retrieved chunks, cited, streamed like a model's answer. Honest and free, never creative."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from knowledge.chunking import split_sentences
from knowledge.selectors import SearchHit
from knowledge.tokens import count_tokens

from .types import Delta

OFFLINE_MODEL = "offline"
NOT_FOUND = "I could not find an answer to that in the knowledge base."
# Below this cosine similarity the best chunk is about something else.
MIN_SCORE = 0.30
SENTENCES_FROM_BEST = 8
SENTENCES_FROM_OTHERS = 2

_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how i in is it me my of on or should the to what when "
    "where which who why with you your".split()
)


@dataclass(frozen=True)
class ExtractiveAnswer:
    text: str
    cited: tuple[int, ...]  # 1-based positions in the hits list


def _terms(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def _units(hit: SearchHit) -> list[str]:
    """Lines and sentences of a chunk, without its title line."""
    units = [s for line in hit.text.splitlines() for s in split_sentences(line)]
    return [u for u in units if u.strip() and u.strip() != hit.title]


def best_sentences(question: str, hit: SearchHit, limit: int) -> list[str]:
    wanted = _terms(question) | _terms(hit.title)
    units = _units(hit)
    ranked = sorted(
        range(len(units)),
        key=lambda i: (-len(wanted & _terms(units[i])) / (1 + len(_terms(units[i]))) ** 0.5, i),
    )
    return [units[i] for i in sorted(ranked[:limit])]  # back in reading order


def compose_answer(question: str, hits: Sequence[SearchHit]) -> ExtractiveAnswer:
    if not hits or hits[0].score < MIN_SCORE:
        return ExtractiveAnswer(NOT_FOUND, ())
    parts, cited = [], []
    for number, hit in enumerate(hits[:3], start=1):
        if number > 1 and hit.score < hits[0].score - 0.08:
            break
        limit = SENTENCES_FROM_BEST if number == 1 else SENTENCES_FROM_OTHERS
        sentences = best_sentences(question, hit, limit)
        if sentences:
            parts.append(f"{hit.title} [{number}]\n" + "\n".join(sentences))
            cited.append(number)
    return ExtractiveAnswer("\n\n".join(parts) or NOT_FOUND, tuple(cited))


async def stream_answer(answer: ExtractiveAnswer, prompt_tokens: int) -> AsyncIterator[Delta]:
    for piece in re.findall(r"\S+\s*", answer.text):
        yield Delta(text=piece, model=OFFLINE_MODEL)
        await asyncio.sleep(0)  # let other chats stream too
    yield Delta(model=OFFLINE_MODEL, tokens_in=prompt_tokens, tokens_out=count_tokens(answer.text))
