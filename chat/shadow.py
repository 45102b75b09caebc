"""Shadow arms: a sampled share of live answers answered again, in the background, by an experiment's
shadow arm, to compare before any visitor sees that arm.

Which answers: `shadow_share` of them, picked by a hash of the answer id (the same answer is always in
or out), in the experiment's languages. The shadow answer has the live one's question, knowledge (the
very chunks the live context held, in its order and with its scores), history and profile, and the shadow
arm's prompt version and model. It is never sent, cached, queued for review or recorded in monitoring's
facts: only stored beside the live answer (experiments.ShadowAnswer) with their similarity and, when an
LLM is configured, a judge's preference.

`shadow_answers_enqueue` runs in the answer's finish step once the answer is stored and only enqueues
(nothing when no experiment runs); the work runs in a Celery worker, which is synchronous, like
chat/evaluation.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction

from experiments.assignment import running_experiments, unit_hash
from experiments.models import Arm, ShadowAnswer
from experiments.selectors import prompt_choice, shadow_arm_ready, shadow_arms_answering
from experiments.services import shadow_answer_record
from knowledge.embeddings import NoActiveSpace, active_space_ref, configured_spec
from knowledge.models import Chunk
from knowledge.selectors import SearchHit, kb_version
from review.evaluation import answer_scores
from review.finetune import served_model

from . import memory, tasks
from .context import Context, build_context
from .generation import Generation, generate
from .llm.gateway import close_clients, get_gateway, llm_enabled
from .llm.pricing import answer_cost
from .llm.types import ChatMessage
from .models import Conversation, Message
from .route import Route, rendered_prompt
from .safety.injection import injection_check
from .selectors import earlier_turns
from .streams import NullSink

logger = logging.getLogger(__name__)

PREFERENCE_PROMPT = (
    "You compare two answers to the same question, both written from the same knowledge excerpts. Prefer "
    "the answer that is more correct, more helpful and better grounded in what an expert would say; length "
    "is no merit in itself. Reply with JSON only: "
    '{"better": "A" or "B" or "tie", "reason": "<one short sentence>"}'
)


# --- enqueue (the live answer's finish step) ----------------------------------------------------------


def shadow_answers_enqueue(*, answer_id: uuid.UUID, language: str, hits: list[SearchHit]) -> int:
    """Enqueue one shadow answer per shadow arm whose share samples this stored answer, once the
    transaction commits; how many."""
    arm_ids = shadow_arms_sampling(answer_id=answer_id, language=language)
    chunk_ids, dense_scores = [h.chunk_id for h in hits], [h.dense_score for h in hits]
    for arm_id in arm_ids:
        transaction.on_commit(partial(tasks.shadow_answer.delay, arm_id, str(answer_id), chunk_ids, dense_scores))
    return len(arm_ids)


def shadow_arms_sampling(*, answer_id: uuid.UUID, language: str) -> list[int]:
    if not running_experiments():  # cached per process: no query at all while no experiment runs
        return []
    return [arm.arm_id for arm in shadow_arms_answering()
            if (not arm.languages or language in arm.languages)
            and unit_hash(arm.salt, f"shadow:{arm.arm_id}", str(answer_id)) < arm.share]


# --- the work (a Celery worker) ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shadowed:
    generation: Generation
    latency_ms: int


def shadow_answer_run(*, arm_id: int, answer_id: uuid.UUID, chunk_ids: list[int],
                      dense_scores: list[float]) -> ShadowAnswer | None:
    """Answer a stored live answer's question again with a shadow arm and store the comparison; None when
    the arm may not (stopped, paused, budget spent, done already) or the live answer is gone."""
    arm = shadow_arm_ready(arm_id=arm_id, live_message_id=answer_id)
    live = Message.objects.select_related("conversation", "reply_to").filter(pk=answer_id).first()
    if arm is None or live is None or live.reply_to is None:
        return None
    question = live.reply_to
    shadowed = _answer(arm, live.conversation, question, _hits(chunk_ids, dense_scores))
    shadow = shadowed.generation
    preference, reason = judge_preference(question=question.text, live=live.text, shadow=shadow.text,
                                          answer_id=answer_id) if llm_enabled() else ("", "")
    return shadow_answer_record(
        arm_id=arm.pk, live_message_id=live.pk, question=question.text, live_text=live.text,
        shadow_text=shadow.text, model=shadow.model, similarity=_similarity(live.text, shadow.text),
        live_latency_ms=live.latency_ms, shadow_latency_ms=shadowed.latency_ms,
        live_tokens=live.tokens_in + live.tokens_out, shadow_tokens=shadow.tokens_in + shadow.tokens_out,
        live_cost=live.cost, cost=_cost(shadow), preference=preference, judge_reason=reason,
    )


def _answer(arm: Arm, conversation: Conversation, question: Message, hits: list[SearchHit]) -> _Shadowed:
    started = time.perf_counter()
    route = _route(arm, conversation, question)
    context: Context = build_context(
        question=question.text, injection_suspected=injection_check(question.text).suspected, route=route,
        earlier=earlier_turns(conversation_id=conversation.pk, before_sequence=question.sequence), hits=hits,
    )
    generation = asyncio.run(_generate(question.text, route.prompt.model, context, arm.generation))
    return _Shadowed(generation, round((time.perf_counter() - started) * 1000))


async def _generate(question: str, model: str, context: Context, options: Mapping[str, Any]) -> Generation:
    """On an event loop of its own (a worker is synchronous), whose LLM connections close with it."""
    try:
        return await generate(question=question, model=model, context=context, sink=NullSink(), streamed=[],
                              options=options)
    finally:
        await close_clients()


def _route(arm: Arm, conversation: Conversation, question: Message) -> Route:
    """The live answer's route with the shadow arm's prompt and model (read back: the live one is not stored)."""
    prompt = prompt_choice(arm.prompt_version, model=arm.model)
    if not prompt.model:  # as route_question picks it: the served (promoted fine-tuned) model
        prompt = replace(prompt, model=served_model())
    language = conversation.language or settings.CHAT_DEFAULT_LANGUAGE
    profile = memory.profile_get(visitor_id=conversation.visitor_id)
    # A summary folded since may hold this question and what followed it: the earlier turns are folded here instead.
    current = conversation.summary_through < question.sequence
    return Route(
        prompt=rendered_prompt(prompt, language=language), kb_version=kb_version(), language=language,
        visitor_id=conversation.visitor_id, profile=memory.profile_text(profile),
        profile_hash=memory.profile_hash(profile), summary=conversation.summary if current else "",
        summary_through=conversation.summary_through if current else 0,
    )


def _hits(chunk_ids: list[int], dense_scores: list[float]) -> list[SearchHit]:
    """The live context's chunks, in its order and with its scores; a chunk re-ingested since is left out."""
    chunks = Chunk.objects.select_related("document").in_bulk(chunk_ids)
    return [
        SearchHit(chunk_id=c.pk, document_id=c.document_id, title=c.document.title, url=c.document.url, text=c.text,
                  score=0.0, heading=c.heading, dense_score=score, source_id=c.document.source_id,
                  token_count=c.token_count)
        for chunk_id, score in zip(chunk_ids, dense_scores, strict=True) if (c := chunks.get(chunk_id)) is not None
    ]


def _cost(generation: Generation) -> Decimal:
    return answer_cost(model=generation.model, tokens_in=generation.tokens_in, tokens_out=generation.tokens_out)


def _similarity(live: str, shadow: str) -> float | None:
    """The embedding cosine of the two answers, as evaluation runs score similarity to a reference."""
    try:
        spec = active_space_ref().spec
    except NoActiveSpace:
        spec = configured_spec()
    try:
        return answer_scores(answer=shadow, reference=live, excerpts=[], spec=spec)[0]
    except Exception:  # the comparison is still worth storing without it
        logger.exception("embedding a shadow answer for similarity failed")
        return None


# --- the judge -----------------------------------------------------------------------------------------


def judge_preference(*, question: str, live: str, shadow: str, answer_id: uuid.UUID) -> tuple[str, str]:
    """Which answer the LLM judge (EVALUATION_JUDGE_MODEL, else LLM_MODEL) prefers: live, shadow or tie, and
    why; ("", why not) when it fails. Which answer is "A" is a hash of the answer id, so the judge's
    leaning to one position does not lean to one arm."""
    shadow_first = unit_hash("judge", "order", str(answer_id)) < 0.5
    first, second = (shadow, live) if shadow_first else (live, shadow)
    messages = [ChatMessage("system", PREFERENCE_PROMPT), ChatMessage(
        "user", f"Question:\n{question}\n\nAnswer A:\n{first}\n\nAnswer B:\n{second}")]
    try:
        reply = asyncio.run(_reply(messages, settings.EVALUATION_JUDGE_MODEL or settings.LLM_MODEL))
        better, reason = parse_preference(reply)
    except Exception as exc:  # an answer the judge cannot grade is still compared on the rest
        logger.warning("judging shadow answer of %s failed", answer_id, exc_info=True)
        return "", f"the judge failed: {type(exc).__name__}: {exc}"[:500]
    if better == "tie":
        return ShadowAnswer.Preference.TIE, reason
    return (ShadowAnswer.Preference.SHADOW if (better == "A") == shadow_first else ShadowAnswer.Preference.LIVE), reason


async def _reply(messages: list[ChatMessage], model: str) -> str:
    texts = []
    try:
        async for delta in get_gateway().stream(messages, model=model):
            texts.append(delta.text)
    finally:
        await close_clients()
    return "".join(texts)


def parse_preference(reply: str) -> tuple[str, str]:
    """("A" | "B" | "tie", reason) from a reply holding a JSON object, perhaps inside prose or a code fence."""
    start, end = reply.find("{"), reply.rfind("}")
    data = json.loads(reply[start:end + 1]) if 0 <= start < end else None
    better = str(data.get("better", "")).strip() if isinstance(data, dict) else ""
    if better.lower() == "tie":
        better = "tie"
    if better not in ("A", "B", "tie"):
        raise ValueError(f"the judge's reply names no better answer: {reply[:200]!r}")
    return better, str(data.get("reason", ""))[:500] if isinstance(data, dict) else ""
