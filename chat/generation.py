"""Step 7 of the pipeline: the answer's tokens, streamed to a sink as they come.

The stream is watched for a system-prompt leak (chat/safety/leak.py): from the token that makes the
answer a leak, nothing more is sent or kept, the model's stream is closed, and `Generation.leaked` says
so for the caller to replace the answer."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from knowledge.selectors import SearchHit
from knowledge.tokens import count_tokens

from .budgets import NOTICES
from .context import Context
from .llm import offline
from .llm.gateway import get_gateway, llm_enabled
from .llm.types import Delta
from .safety.leak import LeakWatch
from .streams import AnswerSink

_CITATION = re.compile(r"\[(\d{1,2})\]")
_PIECE = re.compile(r"\S+\s*")
_WORD_PIECE = re.compile(r"\s*\S+\s*|\s+")  # every character of a text, in words


@dataclass(frozen=True)
class Generation:
    text: str
    model: str
    tokens_in: int
    tokens_out: int
    first_token_at: float | None  # perf_counter
    cited: tuple[int, ...]  # excerpt numbers, from 1
    offline: bool
    budget_spent: str = ""  # composed offline because this LLM budget is spent (chat/budgets.py)
    leaked: bool = False  # the answer began to reproduce the system prompt: cut there (`text` is what was sent)


async def generate(
    *, question: str, model: str, context: Context, sink: AnswerSink, streamed: list[str],
    options: Mapping[str, Any] | None = None, budget_spent: str = "",
) -> Generation:
    """Stream from the LLM gateway, or from the offline extractive provider with no LLM configured or
    with an LLM budget spent (`budget_spent`, said first in the answer). Every token is appended to
    `streamed` before it is sent: what was sent is what a failure keeps. `options`: generation settings
    for this answer (an experiment arm's)."""
    if llm_enabled() and not budget_spent:
        deltas: AsyncIterator[Delta] = get_gateway().stream(context.messages, model=model, options=options)
        extractive = None
    else:
        extractive = offline.compose_answer(question, context.hits, language=context.language)
        if budget_spent:
            extractive = replace(extractive, text=f"{NOTICES[budget_spent]}\n\n{extractive.text}")
        deltas = offline.stream_answer(extractive, context.tokens)
    watch = LeakWatch(context.messages[0].content)
    model_used, tokens_in, tokens_out, first_token_at = "", None, None, None
    async for delta in deltas:
        model_used = delta.model or model_used
        tokens_in = delta.tokens_in if delta.tokens_in is not None else tokens_in
        tokens_out = delta.tokens_out if delta.tokens_out is not None else tokens_out
        text = _unleaked(watch, delta.text) if delta.text else ""
        if text:
            streamed.append(text)
            first_token_at = first_token_at or time.perf_counter()
            await sink.token(len(streamed), text)
        if watch.leaked:
            await _close(deltas)
            break
    leaked = watch.leaked or watch.finish()
    text = "".join(streamed)
    return Generation(
        text=text, model=model_used, tokens_in=tokens_in if tokens_in is not None else context.tokens,
        tokens_out=tokens_out if tokens_out is not None else count_tokens(text), first_token_at=first_token_at,
        cited=extractive.cited if extractive else citations(text, len(context.hits)), offline=extractive is not None,
        budget_spent=budget_spent, leaked=leaked,
    )


def _unleaked(watch: LeakWatch, text: str) -> str:
    """The part of `text` before the word that makes the answer a leak (all of it when none does). Fed
    word by word: one delta may carry many tokens when the server wrote them at once."""
    kept = []
    for piece in _WORD_PIECE.findall(text):
        if watch.feed(piece):
            break
        kept.append(piece)
    return "".join(kept)


async def _close(deltas: AsyncIterator[Delta]) -> None:
    """End the model's stream now (its HTTP response with it), not when the generator is collected."""
    aclose = getattr(deltas, "aclose", None)
    if aclose is not None:
        await aclose()


async def stream_stored(text: str, sink: AnswerSink, streamed: list[str]) -> None:
    """A stored answer streams the way a generated one does (same frames: clients need no second
    code path)."""
    for piece in _PIECE.findall(text):
        streamed.append(piece)
        await sink.token(len(streamed), piece)


def citations(text: str, hit_count: int) -> tuple[int, ...]:
    """The excerpt numbers the answer cites ([n]), in order of first citation."""
    numbers = (int(n) for n in _CITATION.findall(text))
    return tuple(dict.fromkeys(n for n in numbers if 1 <= n <= hit_count))


def confidence_score(hits: list[SearchHit], cited: tuple[int, ...]) -> float:
    """How sure we are that the answer rests on the knowledge base, from 0 to 1.

    The dense (cosine) similarity of the best cited chunk, an absolute measure unlike the fused
    rank score, mapped so that 0.25 (unrelated) is 0 and 0.75 (a close match for MiniLM) is 1.
    An answer that cites nothing is at most 0.2.
    """
    if not cited:
        return 0.2 if hits else 0.0
    best = max(hits[n - 1].dense_score for n in cited)
    return round(min(1.0, max(0.0, (best - 0.25) / 0.5)), 3)
