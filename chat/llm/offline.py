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
SENTENCES_FROM_BEST = 12
SENTENCES_FROM_OTHERS = 2

_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how i in is it me my of on or should the to what when where "
    "which who why with you your".split()
)


@dataclass(frozen=True)
class ExtractiveAnswer:
    text: str
    cited: tuple[int, ...]  # 1-based positions in the hits list


def _terms(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def _units(hits: Sequence[SearchHit]) -> list[str]:
    """Lines and sentences of one document's chunks in reading order, without its title line
    and without the sentences that consecutive chunks share (their overlap)."""
    units: list[str] = []
    for hit in sorted(hits, key=lambda h: h.chunk_id):
        for line in hit.text.splitlines():
            units.extend(s for s in split_sentences(line) if s != hit.title and s not in units)
    return units


def best_sentences(question: str, hits: Sequence[SearchHit], limit: int) -> list[str]:
    wanted = _terms(question) | _terms(hits[0].title)
    units = _units(hits)
    ranked = sorted(
        range(len(units)),
        key=lambda i: (-len(wanted & _terms(units[i])) / (1 + len(_terms(units[i]))) ** 0.5, i),
    )
    return [units[i] for i in sorted(ranked[:limit])]  # back in reading order


def _by_document(hits: Sequence[SearchHit]) -> list[list[tuple[int, SearchHit]]]:
    """Hits grouped per document (with their 1-based numbers), best document first."""
    groups: dict[int, list[tuple[int, SearchHit]]] = {}
    for number, hit in enumerate(hits, start=1):
        groups.setdefault(hit.document_id, []).append((number, hit))
    return list(groups.values())


def compose_answer(question: str, hits: Sequence[SearchHit]) -> ExtractiveAnswer:
    if not hits or hits[0].dense_score < MIN_SCORE:
        return ExtractiveAnswer(NOT_FOUND, ())
    parts: list[str] = []
    cited: list[int] = []
    for rank, group in enumerate(_by_document(hits)[:3]):
        numbers, doc_hits = [n for n, _ in group], [h for _, h in group]
        if rank > 0 and doc_hits[0].dense_score < hits[0].dense_score - 0.08:
            break
        limit = SENTENCES_FROM_BEST if rank == 0 else SENTENCES_FROM_OTHERS
        sentences = best_sentences(question, doc_hits, limit)
        if sentences:
            marks = "".join(f"[{n}]" for n in numbers)
            parts.append(f"{doc_hits[0].title} {marks}\n" + "\n".join(sentences))
            cited.extend(numbers)
    return ExtractiveAnswer("\n\n".join(parts) or NOT_FOUND, tuple(cited))


async def stream_answer(answer: ExtractiveAnswer, prompt_tokens: int) -> AsyncIterator[Delta]:
    for piece in re.findall(r"\S+\s*", answer.text):
        yield Delta(text=piece, model=OFFLINE_MODEL)
        await asyncio.sleep(0)  # let other chats stream too
    yield Delta(model=OFFLINE_MODEL, tokens_in=prompt_tokens, tokens_out=count_tokens(answer.text))
