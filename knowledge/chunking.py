"""Split a document into chunks that follow its structure.

Paragraphs stay whole when they fit; a long paragraph is cut between sentences; consecutive
chunks share a tail of sentences (the overlap) so a fact on a boundary is found from both sides.
"""

import re
from dataclasses import dataclass

from .tokens import count_tokens

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")


@dataclass(frozen=True)
class ChunkDraft:
    text: str
    token_count: int


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def _units(text: str, max_tokens: int) -> list[tuple[str, int]]:
    """Paragraphs that fit, else their sentences: the pieces chunks are packed from."""
    units: list[tuple[str, int]] = []
    for paragraph in _PARAGRAPH_BREAK.split(text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        tokens = count_tokens(paragraph)
        if tokens <= max_tokens:
            units.append((paragraph, tokens))
        else:
            units.extend((s, count_tokens(s)) for s in split_sentences(paragraph))
    return units


def chunk_text(text: str, *, max_tokens: int, overlap_tokens: int) -> list[ChunkDraft]:
    chunks: list[ChunkDraft] = []
    current: list[tuple[str, int]] = []
    for unit in _units(text, max_tokens):
        if current and sum(t for _, t in current) + unit[1] > max_tokens:
            chunks.append(_join(current))
            current = _overlap_tail(current, overlap_tokens)
        current.append(unit)
    if current:
        chunks.append(_join(current))
    return chunks


def _overlap_tail(units: list[tuple[str, int]], overlap_tokens: int) -> list[tuple[str, int]]:
    tail: list[tuple[str, int]] = []
    for unit in reversed(units):
        if sum(t for _, t in tail) + unit[1] > overlap_tokens:
            break
        tail.insert(0, unit)
    return tail


def _join(units: list[tuple[str, int]]) -> ChunkDraft:
    text = "\n\n".join(u for u, _ in units)
    return ChunkDraft(text=text, token_count=sum(t for _, t in units))
