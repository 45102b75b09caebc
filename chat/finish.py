"""Step 8 of the pipeline: what an answer leaves behind once its last token is sent.

Runs on a database thread. The answer is stored and cached with personal data masked (the visitor saw it as
streamed). The answer row, the review queue and the cache are written here, before the
`end` frame (a visitor who asks again at once finds them); a task folds the conversation's summary when
the context folded turns it lacks. The monitoring fact is only built here: the pipeline records it after
the `end` frame is sent (`fact_record`), since no visitor waits for a dashboard.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings

from knowledge.embeddings import QueryVector
from monitoring.services import answer_fact_record
from review.models import ReviewItem
from review.services import review_item_enqueue, review_item_screen

from . import services, tasks
from .budgets import budget_charge
from .confidence import answer_confidence, answer_features
from .context import Context
from .generation import Generation
from .llm.pricing import answer_cost
from .models import Message
from .reuse.selectors import Reused
from .reuse.services import Answered, answer_cache, cacheable, reuse_record
from .route import Route
from .safety.pii import pii_mask_structured
from .safety.screening import Screening
from .shadow import shadow_answers_enqueue

if TYPE_CHECKING:
    from .pipeline import StepTimer, Turn

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Finished:
    """A stored answer: the frame that ends it for the visitor, and its monitoring fact to record after."""

    frame: dict[str, Any]
    fact: dict[str, Any]  # answer_fact_record's arguments


def fact_record(fact: dict[str, Any]) -> None:
    """Record an answer's monitoring fact (on a database thread, after its `end` frame). A failure costs
    the dashboards one answer, never the visitor the answer: it is logged, not raised."""
    try:
        answer_fact_record(**fact)
    except Exception:
        logger.exception("recording the monitoring fact of answer %s failed", fact.get("message_id"))


def finish_generated(
    *, turn: Turn, route: Route, vector: QueryVector | None, context: Context, generation: Generation,
    screening: Screening,
) -> Finished:
    """Store the answer with its facts, queue it for review when unsure or flagged, cache it; the `end`
    frame (or the `held` frame of an answer that waits for a trainer). A refused answer is stored as its
    refusal; what the model wrote stays for the trainer in the review item's answer when it was held."""
    answer = _generated_answer(turn, route, context, generation, screening)
    if not generation.offline:
        _best_effort(budget_charge, visitor_id=turn.visitor_id, tokens=generation.tokens_in + generation.tokens_out,
                     cost=answer.facts["cost"])
    held = (holds(answer.confidence) or bool(screening.hold)) and not screening.refusal
    _store(turn, answer, held=held, expires=not screening.hold)
    fact = dict(message_id=turn.answer_id, conversation_id=turn.conversation_id, status="complete",
                offline=generation.offline, features=answer.features, best_match=answer.features["best_dense"],
                **_question_facts(turn, route, vector), **answer.facts)
    if context.fold_pending:
        _best_effort(tasks.conversation_summarize.delay, str(turn.conversation_id), turn.question_sequence)
    _best_effort(shadow_answers_enqueue, answer_id=turn.answer_id, language=route.language, hits=context.hits)
    if held:
        review_item_enqueue(message_id=turn.answer_id, reasons=[*screening.reasons, ReviewItem.Reason.HELD],
                            priority=1 - answer.confidence, question=vector, reason_text=screening.reason_text)
        return Finished({"type": "held", "message_id": str(turn.answer_id)}, fact)
    _signals_after_sent(turn, route, vector, context, generation, screening, answer)
    return Finished(_end_frame(turn.answer_id, answer.sources, answer.confidence, Message.Reuse.NONE,
                               answer.facts["latency_ms"]), fact)


@dataclass(frozen=True)
class GeneratedAnswer:
    """A generated answer as it is stored: its text, citations, confidence and the facts of its row."""

    text: str
    sources: list[dict[str, Any]]
    confidence: float
    features: dict[str, Any]
    facts: dict[str, Any]  # what the answer row and its monitoring fact both record
    row: dict[str, Any]  # the answer row's other columns


def _generated_answer(
    turn: Turn, route: Route, context: Context, generation: Generation, screening: Screening
) -> GeneratedAnswer:
    # A refusal (answer moderation) replaces what was written: none of its citations go with it.
    sources = [] if screening.refusal else [_source(context.hits[n - 1]) for n in generation.cited]
    features = _features(turn, route, context, generation)
    confidence, features["confidence_source"] = answer_confidence(
        hits=context.hits, cited=generation.cited, features=features)
    facts = _generated_facts(turn, route, generation, confidence)
    row = {"sources": sources, "context_tokens": context.tokens, "full_history_tokens": context.full_history_tokens,
           "refused": bool(screening.refusal)}
    text = screening.refusal or stored_text(generation.text)
    return GeneratedAnswer(text, sources, confidence, features, facts, row)


def _store(turn: Turn, answer: GeneratedAnswer, *, held: bool, expires: bool) -> None:
    """Held: not sent, not cached, first in the queue; sent when a trainer decides, or when the hold runs
    out (`expires`) — never for a hold the safety policy asked for: that one is never sent unreviewed."""
    stored = {**answer.facts, **answer.row}
    if held:
        services.answer_hold(message_id=turn.answer_id, text=answer.text, facts=stored, expires=expires)
    else:
        services.answer_complete(message_id=turn.answer_id, text=answer.text, facts=stored)


def _signals_after_sent(
    turn: Turn, route: Route, vector: QueryVector | None, context: Context, generation: Generation,
    screening: Screening, answer: GeneratedAnswer,
) -> None:
    """An answer that is sent: queued for review when unsure, then when flagged; cached when shareable."""
    _best_effort(review_item_screen, message_id=turn.answer_id, confidence=answer.confidence,
                 cited=len(answer.sources), question=vector)
    if screening.flags:  # after the confidence signals: the flag is the reason a trainer reads first
        _best_effort(_flags_queue, turn=turn, screening=screening, vector=vector)
    # An answer composed because a budget is spent says so: it is nobody else's answer.
    shareable = not generation.budget_spent and screening.cacheable
    if vector is not None and shareable and cacheable(had_history=context.had_history,
                                                      injection_suspected=turn.injection_suspected, text=answer.text):
        _cache(turn, route, vector, context, generation, text=answer.text, sources=answer.sources,
               confidence=answer.confidence, cost=answer.facts["cost"])


def _generated_facts(turn: Turn, route: Route, generation: Generation, confidence: float) -> dict[str, Any]:
    """What the answer row and its monitoring fact both record."""
    return {
        "model": generation.model, "prompt_version_id": route.prompt.prompt_version_id,
        "tokens_in": generation.tokens_in, "tokens_out": generation.tokens_out,
        "cost": answer_cost(model=generation.model, tokens_in=generation.tokens_in, tokens_out=generation.tokens_out),
        "latency_ms": turn.timer.elapsed_ms(), "confidence": confidence, "timings": dict(turn.timer.steps),
        "ttft_ms": turn.timer.elapsed_ms(generation.first_token_at) if generation.first_token_at else None,
    }


def stored_text(answer: str) -> str:
    """The answer as it is stored, cached and shown to staff, structured identifiers masked. No NER pass:
    the model never read a visitor's name or place (questions, profile and summaries are masked before it
    sees them), so a name in its answer comes from the excerpts, which are no visitor's data."""
    return pii_mask_structured(answer).text


def _cache(turn: Turn, route: Route, vector: QueryVector, context: Context, generation: Generation, *, text: str,
           sources: list[dict[str, Any]], confidence: float, cost: Any) -> None:
    answer_cache(scope=route.scope(vector), vector=vector, answered=Answered(
        question=turn.question, text=text, sources=sources,
        chunk_ids=[context.hits[n - 1].chunk_id for n in generation.cited],
        document_ids=sorted({h.document_id for h in context.hits}), confidence=confidence,
        model=generation.model, tokens_in=generation.tokens_in, tokens_out=generation.tokens_out, cost=cost,
        message_id=turn.answer_id,
    ))


def holds(confidence: float) -> bool:
    """Whether an answer this sure waits for a trainer before it is sent (REVIEW_HOLD_BELOW)."""
    threshold = settings.REVIEW_HOLD_BELOW
    return threshold is not None and confidence < threshold


def _features(turn: Turn, route: Route, context: Context, generation: Generation) -> dict[str, Any]:
    return answer_features(
        hits=context.hits, cited=generation.cited, tokens_out=generation.tokens_out, offline=generation.offline,
        language=route.language, had_history=context.had_history, injection_suspected=turn.injection_suspected,
    )


def _source(hit: Any) -> dict[str, Any]:
    return {"title": hit.title, "url": hit.url, "chunk_id": hit.chunk_id, "score": hit.score}


def finish_refused(*, turn: Turn, route: Route, vector: QueryVector | None, screening: Screening) -> Finished:
    """Store the refusal the safety policy answers a question with, and queue it with why."""
    timer = turn.timer
    latency_ms = timer.elapsed_ms()
    facts: dict[str, Any] = {
        "model": "", "prompt_version_id": route.prompt.prompt_version_id, "tokens_in": 0, "tokens_out": 0,
        "latency_ms": latency_ms, "ttft_ms": latency_ms, "confidence": 0.0, "timings": dict(timer.steps),
    }
    services.answer_complete(message_id=turn.answer_id, text=screening.refusal,
                             facts={**facts, "sources": [], "refused": True})
    _best_effort(_flags_queue, turn=turn, screening=screening, vector=vector)
    fact = dict(message_id=turn.answer_id, conversation_id=turn.conversation_id, status="complete",
                **_question_facts(turn, route, vector), **facts)
    return Finished(_end_frame(turn.answer_id, [], 0.0, Message.Reuse.NONE, latency_ms), fact)


def _flags_queue(*, turn: Turn, screening: Screening, vector: QueryVector | None) -> None:
    """A flagged answer in the review queue, first of all (it is not about confidence), with why."""
    review_item_enqueue(message_id=turn.answer_id, reasons=screening.reasons, priority=1.0, question=vector,
                        reason_text=screening.reason_text)


def finish_reused(
    *, turn: Turn, route: Route, reused: Reused, vector: QueryVector, searched_as: str,
    screening: Screening | None = None,
) -> Finished:
    """Store a served stored answer with what it saved, count the hit where it came from; the `end` frame.
    `searched_as`: the question as reuse read it, what the hit is recorded under."""
    timer, answer_id, conversation_id = turn.timer, turn.answer_id, turn.conversation_id
    latency_ms = timer.elapsed_ms()
    facts: dict[str, Any] = {
        "model": reused.model, "prompt_version_id": route.prompt.prompt_version_id, "tokens_in": 0,
        "tokens_out": 0, "latency_ms": latency_ms, "ttft_ms": latency_ms, "confidence": reused.confidence,
        "timings": dict(timer.steps), "reuse": reused.kind, "cost_avoided": reused.cost_avoided,
    }
    entry_id = reused.cache_hit.entry.pk if reused.cache_hit else None
    services.answer_complete(message_id=answer_id, text=reused.text, facts={
        **facts, "sources": reused.sources, "reuse_details": reused.details,
        "reused_entry_id": entry_id, "approved_answer_id": reused.approved_id,
    })
    _best_effort(reuse_record, reused=reused, question=searched_as, vector=vector, scope=route.scope(vector))
    if screening is not None and screening.flags:
        _best_effort(_flags_queue, turn=turn, screening=screening, vector=vector)
    fact = dict(message_id=answer_id, conversation_id=conversation_id, status="complete",
                **_question_facts(turn, route, vector), **facts)
    return Finished(_end_frame(answer_id, reused.sources, reused.confidence, reused.kind, latency_ms), fact)


def _question_facts(turn: Turn, route: Route, vector: QueryVector | None) -> dict[str, Any]:
    """Who asked what, as monitoring compares it: the question, its embedding (and in which space), the
    language, the experiment arm that answered and the visitor (experiments count visitors per arm)."""
    return {"language": route.language, "question": turn.question, "arm": route.arm.key if route.arm else "",
            "visitor_id": turn.visitor_id,
            "question_embedding": vector.vector if vector else None,
            "embedding_space_id": vector.space_id if vector else None}


def _best_effort(work: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    """What follows a stored answer may fail without failing it: the visitor already has it all."""
    try:
        work(*args, **kwargs)
    except Exception:
        logger.exception("after storing an answer, %s failed", getattr(work, "__name__", work))


def _end_frame(
    answer_id: uuid.UUID, sources: list[dict[str, Any]], confidence: float, reuse: str, latency_ms: int
) -> dict[str, Any]:
    return {"type": "end", "message_id": str(answer_id), "sources": sources, "confidence": confidence,
            "reuse": str(reuse), "latency_ms": latency_ms}


def record_failure(
    *, answer_id: uuid.UUID, conversation_id: uuid.UUID, partial_text: str, error: str, timer: StepTimer
) -> None:
    timings = dict(timer.steps)
    if not services.answer_fail(message_id=answer_id, partial_text=partial_text, error=error, timings=timings):
        return  # already complete (or failed): its fact is written
    answer_fact_record(
        message_id=answer_id, conversation_id=conversation_id, status="failed",
        error_code=error.split(":", 1)[0], latency_ms=timer.elapsed_ms(), timings=timings,
    )
