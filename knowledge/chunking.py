"""Split a document into chunks that follow its structure.

A document is first read into blocks (paragraphs, list items, tables, code), each under its
heading path ("Squat › Setup"). Chunks are packed from consecutive blocks of one section up to a
token budget; a block too long for one chunk is cut between sentences (between words only when a
single sentence is over the budget). Consecutive chunks of a section share a tail of blocks or
sentences (the overlap) so a fact on a boundary is found from both sides. The heading path is kept
beside the chunk text; ingestion embeds and indexes it with the chunk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .tokens import count_tokens

HEADING_SEPARATOR = " › "
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_TEXT_LIST_ITEM = re.compile(r"^\s*([-*•]|\d+[.)])\s+")


@dataclass(frozen=True)
class Block:
    text: str
    headings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChunkDraft:
    text: str
    token_count: int
    headings: tuple[str, ...] = ()

    @property
    def heading(self) -> str:
        return HEADING_SEPARATOR.join(self.headings)


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


# --- reading blocks -------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _markdown_parser():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table")


def markdown_blocks(text: str) -> list[Block]:
    """Paragraphs, list items, tables and code of a Markdown text, each with its heading path."""
    lines = text.splitlines()
    tokens = _markdown_parser().parse(text)
    blocks: list[Block] = []
    path: list[tuple[int, str]] = []  # (level, heading text)
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            level = int(token.tag[1])
            path = [(lvl, title) for lvl, title in path if lvl < level]
            path.append((level, tokens[index + 1].content.strip()))
            continue
        is_item = token.type == "list_item_open" and token.level == 1
        is_top_block = token.level == 0 and token.map and token.type not in (
            "heading_open", "bullet_list_open", "ordered_list_open"
        )
        if (is_item or is_top_block) and token.map and token.nesting >= 0:
            source = "\n".join(lines[token.map[0] : token.map[1]]).strip()
            if source:
                blocks.append(Block(source, tuple(title for _, title in path)))
    return blocks


def text_blocks(text: str) -> list[Block]:
    """Paragraphs of plain text (blank-line separated); list items stand alone."""
    blocks: list[Block] = []
    for paragraph in _PARAGRAPH_BREAK.split(text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        lines = paragraph.splitlines()
        if len(lines) > 1 and sum(bool(_TEXT_LIST_ITEM.match(line)) for line in lines) >= len(lines) / 2:
            blocks.extend(Block(line.strip()) for line in lines if line.strip())
        else:
            blocks.append(Block(paragraph))
    return blocks


# --- packing --------------------------------------------------------------------------------------


def chunk_blocks(blocks: list[Block], *, max_tokens: int, overlap_tokens: int) -> list[ChunkDraft]:
    chunks: list[ChunkDraft] = []
    for headings, units in _sections(blocks, max_tokens):
        current: list[tuple[str, int]] = []
        for unit in units:
            if current and sum(t for _, t in current) + unit[1] > max_tokens:
                chunks.append(_join(current, headings))
                current = _overlap_tail(current, overlap_tokens, room=max_tokens - unit[1])
            current.append(unit)
        if current:
            chunks.append(_join(current, headings))
    return chunks


def chunk_text(text: str, *, max_tokens: int, overlap_tokens: int, markdown: bool = False) -> list[ChunkDraft]:
    blocks = markdown_blocks(text) if markdown else text_blocks(text)
    return chunk_blocks(blocks, max_tokens=max_tokens, overlap_tokens=overlap_tokens)


def _sections(blocks: list[Block], max_tokens: int) -> list[tuple[tuple[str, ...], list[tuple[str, int]]]]:
    """Consecutive blocks under the same headings, as units that each fit in a chunk."""
    sections: list[tuple[tuple[str, ...], list[tuple[str, int]]]] = []
    for block in blocks:
        if not sections or sections[-1][0] != block.headings:
            sections.append((block.headings, []))
        sections[-1][1].extend(_units(block.text, max_tokens))
    return sections


def _units(text: str, max_tokens: int) -> list[tuple[str, int]]:
    tokens = count_tokens(text)
    if tokens <= max_tokens:
        return [(text, tokens)]
    units: list[tuple[str, int]] = []
    for sentence in split_sentences(text):
        sentence_tokens = count_tokens(sentence)
        if sentence_tokens <= max_tokens:
            units.append((sentence, sentence_tokens))
        else:
            units.extend(_word_windows(sentence, max_tokens))
    return units


def _word_windows(sentence: str, max_tokens: int) -> list[tuple[str, int]]:
    """The last resort for a sentence longer than a chunk: cut between words."""
    windows: list[tuple[str, int]] = []
    words: list[str] = []
    for word in sentence.split():
        if words and count_tokens(" ".join([*words, word])) > max_tokens:
            text = " ".join(words)
            windows.append((text, count_tokens(text)))
            words = []
        words.append(word)
    if words:
        text = " ".join(words)
        windows.append((text, count_tokens(text)))
    return windows


def _overlap_tail(units: list[tuple[str, int]], overlap_tokens: int, room: int) -> list[tuple[str, int]]:
    """The last units worth at most overlap_tokens, leaving room for the next unit."""
    tail: list[tuple[str, int]] = []
    budget = min(overlap_tokens, room)
    for unit in reversed(units):
        if sum(t for _, t in tail) + unit[1] > budget:
            break
        tail.insert(0, unit)
    return tail


def _join(units: list[tuple[str, int]], headings: tuple[str, ...]) -> ChunkDraft:
    text = "\n\n".join(u for u, _ in units)
    return ChunkDraft(text=text, token_count=sum(t for _, t in units), headings=headings)
