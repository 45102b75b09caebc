"""Evaluation cases answered and judged for review's evaluation runs (EVALUATION_ANSWERER and
EVALUATION_JUDGE point here: review does not import chat).

A case is answered by the pipeline's own steps (guard, retrieve, build context, generate) with the
run's model and prompt version, and nothing else: no answer reuse, since a run measures the model and
not the cache, and nothing stored, since no visitor asked. Both run in a Celery worker, which is
synchronous: the one asynchronous step gets an event loop of its own, whose LLM connections are
closed before it ends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from typing import Any

from django.conf import settings

from experiments.models import PromptVersion
from experiments.selectors import PromptChoice, prompt_for_new_answer
from knowledge.embeddings import NoActiveSpace, QueryVector, embed_query
from knowledge.selectors import SearchHit, kb_version, search_full_text
from review.evaluation import CaseAnswer, Judgement
from review.finetune import served_model

from .context import Context, build_context
from .generation import Generation, generate
from .guard import guard
from .llm.gateway import close_clients, get_gateway
from .llm.types import ChatMessage
from .pipeline import retrieve
from .route import Route, rendered_prompt
from .safety.injection import injection_check

JUDGE_PROMPT = (
    "You grade an assistant's answer to a question against a reference answer that an expert approved. "
    "Score 1 when the answer says what the reference says (the wording may differ), 0 when it contradicts "
    "the reference or misses its point, and in between for an answer that is partly right or incomplete. "
    "Extra detail is fine unless the reference contradicts it. Reply with JSON only: "
    '{"score": <a number from 0 to 1>, "reason": "<one short sentence>"}'
)
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


class JudgeError(ValueError):
    """The judge's reply holds no score."""


def answer_case(*, question: str, language: str, model: str, prompt_version_id: int | None) -> CaseAnswer:
    """One evaluation case answered as a visitor's first question would be, with `model` (empty: the
    prompt version's, else the served one, a promoted fine-tuned model included) and that prompt version
    (None: the `production` one). Raises what the pipeline raises: GuardError for a question it refuses,
    LLMError when generation fails. The answer names the model that gave it: the gateway's fallback
    model, when the one asked for failed."""
    started = time.perf_counter()
    guarded = guard(question)
    prompt = rendered_prompt(_prompt(prompt_version_id), language=language)
    hits = retrieve(guarded.text, _vector_or_none(guarded.text),
                    search_full_text(guarded.text, k=settings.KNOWLEDGE_TOP_K), language)
    route = Route(prompt=prompt, kb_version=kb_version(), language=language, visitor_id="", profile="",
                  profile_hash="", summary="", summary_through=0)
    context = build_context(question=guarded.text, injection_suspected=injection_check(question).suspected, route=route,
                            earlier=[], hits=hits)
    # As route_question picks it: a version that names no model is answered by the served (promoted) one.
    generation = asyncio.run(_generate(guarded.text, model or prompt.model or served_model(), context))
    return CaseAnswer(
        text=generation.text, excerpts=[_excerpt(context.hits[n - 1]) for n in generation.cited],
        latency_ms=round((time.perf_counter() - started) * 1000), model=generation.model,
    )


def _prompt(prompt_version_id: int | None) -> PromptChoice:
    if prompt_version_id is None:
        return prompt_for_new_answer()
    version = PromptVersion.objects.get(pk=prompt_version_id)
    return PromptChoice(version.pk, version.system_prompt, version.model, version.name)


def _vector_or_none(question: str) -> QueryVector | None:
    """None before anything is ingested (full-text search alone, as the pipeline does then). Other
    embedding failures fail the case: a run should not quietly measure a degraded search."""
    try:
        return embed_query(question)
    except NoActiveSpace:
        return None


async def _generate(question: str, model: str, context: Context) -> Generation:
    try:
        return await generate(question=question, model=model, context=context, sink=_Discard(), streamed=[])
    finally:
        await close_clients()


class _Discard:
    """An AnswerSink for an answer nobody watches."""

    async def token(self, seq: int, text: str) -> None:
        pass

    async def end(self, frame: dict[str, Any]) -> None:
        pass

    async def error(self, frame: dict[str, Any]) -> None:
        pass


def _excerpt(hit: SearchHit) -> str:
    label = f"{hit.title} › {hit.heading}" if hit.heading else hit.title
    return f"{label}\n{hit.text}"


def judge_answer(*, question: str, reference: str, answer: str, model: str) -> Judgement:
    """The LLM's 0–1 grade of `answer` against `reference`, with its reason and the model that gave it,
    through the gateway (its retries, fallback and circuit breaker). Only called when an LLM is configured."""
    messages = [
        ChatMessage("system", JUDGE_PROMPT),
        ChatMessage("user", f"Question:\n{question}\n\nReference answer:\n{reference}\n\nAnswer to grade:\n{answer}"),
    ]
    reply, graded_by = asyncio.run(_complete(messages, model))
    return dataclasses.replace(parse_judgement(reply), model=graded_by)


async def _complete(messages: list[ChatMessage], model: str) -> tuple[str, str]:
    """The reply's text and the model that wrote it."""
    texts, answered_by = [], ""
    try:
        async for delta in get_gateway().stream(messages, model=model):
            texts.append(delta.text)
            answered_by = delta.model or answered_by
    finally:
        await close_clients()
    return "".join(texts), answered_by


def parse_judgement(reply: str) -> Judgement:
    """The score (clamped to 0..1) and reason of a reply that holds a JSON object, perhaps inside prose
    or a code fence, as models write it."""
    found = _JSON_OBJECT.search(reply)
    try:
        data = json.loads(found.group()) if found else None
        score = float(data["score"]) if isinstance(data, dict) else None
    except (ValueError, TypeError, KeyError) as exc:
        raise JudgeError(f"the judge's reply holds no score: {reply[:200]!r}") from exc
    if score is None or score != score:  # NaN
        raise JudgeError(f"the judge's reply holds no score: {reply[:200]!r}")
    reason = data.get("reason", "") if isinstance(data, dict) else ""
    return Judgement(score=min(1.0, max(0.0, score)), note=str(reason)[:500])
