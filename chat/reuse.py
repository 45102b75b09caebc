"""The pipeline's route and reuse steps: which prompt, language and profile a question is answered
with, and whether a stored answer (approved first, then the cache) may be served instead.

Sync functions: the pipeline runs them on the database thread. Any failure of the reuse step is
logged and answered normally: reuse may save work, never cost an answer.
"""

from __future__ import annotations

import logging
import statistics
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection

from experiments.selectors import PromptChoice, prompt_for_new_answer
from knowledge.embeddings import QueryVector
from knowledge.selectors import SearchHit, kb_version
from knowledge.tokens import count_tokens
from monitoring.selectors import recent_tokens_in
from review.selectors import ApprovedCandidate, approved_candidates_from, approved_candidates_query
from review.services import approved_answer_hit

from . import cache, memory
from .language import detect_language
from .llm.gateway import llm_enabled
from .llm.pricing import answer_cost
from .models import Conversation, Message
from .reuse_guard import GuardParams, Neighbour, decide

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    prompt: PromptChoice
    kb_version: int
    language: str
    visitor_id: str
    profile: str  # the visitor's profile as the model reads it; empty: none
    profile_hash: str
    summary: str
    summary_through: int

    def scope(self, vector: QueryVector) -> cache.Scope:
        """An answer shaped by a profile is cached for that visitor and profile only."""
        personal = bool(self.profile)
        return cache.Scope(
            space_id=vector.space_id, dimensions=vector.dimensions, prompt_version_id=self.prompt.prompt_version_id,
            kb_version=self.kb_version, language=self.language, visitor_id=self.visitor_id if personal else "",
            profile_hash=self.profile_hash if personal else "",
        )


@dataclass(frozen=True)
class Reused:
    kind: str  # Message.Reuse
    text: str
    sources: list[dict[str, Any]]
    confidence: float
    model: str
    cost_avoided: Decimal
    details: dict[str, Any] = field(default_factory=dict)
    entry_id: int | None = None
    approved_id: int | None = None


def route_turn(
    *, conversation_id: uuid.UUID, visitor_id: str, question: str, opened: Conversation | None = None
) -> Route:
    """Prompt, knowledge-base version, language, profile (with facts this question states) and summary.

    `opened`: the conversation as this turn created it, so it need not be read back."""
    profile = memory.profile_remember(visitor_id=visitor_id, text=question)
    conversation = opened or Conversation.objects.only("language", "summary", "summary_through").get(
        pk=conversation_id)
    if opened is not None and opened.language:
        language = opened.language  # detected in this very question when the conversation was opened
    else:
        fallback = conversation.language or (profile.language if profile and profile.language else "") \
            or settings.CHAT_DEFAULT_LANGUAGE
        language = detect_language(question, fallback)
    if not conversation.language:
        Conversation.objects.filter(pk=conversation_id, language="").update(language=language)
    return Route(
        prompt=prompt_for_new_answer(), kb_version=kb_version(), language=language, visitor_id=visitor_id,
        profile=memory.profile_text(profile), profile_hash=memory.profile_hash(profile),
        summary=conversation.summary, summary_through=conversation.summary_through,
    )


# --- reuse ---------------------------------------------------------------------------------------------


def reuse_find(*, question: str, route: Route, vector: QueryVector | None) -> Reused | None:
    try:
        return _find(question, route, vector)
    except Exception:
        logger.exception("reuse lookup failed; answering normally")
        return None


def _find(question: str, route: Route, vector: QueryVector | None) -> Reused | None:
    if vector is None:
        return None
    approved, nearest = _candidates(route, vector)
    return _approved(question, route, approved) or _cached(question, route, vector, nearest)


def _candidates(route: Route, vector: QueryVector) -> tuple[list[ApprovedCandidate], list[Neighbour]]:
    """The approved answers' nearest questions and the answer cache's: one round trip on every
    answer's path (the cache's statements last: their SET LOCALs hold to the end)."""
    sql, params = approved_candidates_query(vector=vector, language=route.language, prompt_name=route.prompt.name)
    if settings.CACHE_ENABLED:
        cache_sql, cache_params = cache.neighbours_query(route.scope(vector), vector, cache.guard_params().neighbours)
        sql, params = f"{sql}; {cache_sql}", [*params, *cache_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        approved = approved_candidates_from(cursor.fetchall())
        if not settings.CACHE_ENABLED:
            return approved, []
        for _ in range(1 + cache.NEIGHBOURS_RESULT):
            cursor.nextset()
        return approved, cache.neighbours_from(cursor.fetchall())


def _approved_params() -> GuardParams:
    # One question per approved answer: closeness and the gap to the next approved answer decide.
    return GuardParams(min_similarity=settings.APPROVED_MIN_SIMILARITY, min_gap=settings.APPROVED_MIN_GAP,
                       min_support=1, near_duplicate=settings.APPROVED_MIN_SIMILARITY,
                       near_duplicate_gap=settings.APPROVED_MIN_GAP)


def _approved(question: str, route: Route, candidates: list[ApprovedCandidate]) -> Reused | None:
    # Keyed by their text: the same answer approved twice agrees with itself; two different
    # answers to one question disagree, and neither is served until a trainer settles it.
    nearest = [
        Neighbour(c.answer_id, c.question, cache.answer_key(c.answer, []), c.similarity) for c in candidates
    ]
    decision = decide(question, nearest, _approved_params())
    if not decision.accepted:
        return None
    approved = next(c for c in candidates if c.answer_id == decision.neighbour.entry_id)
    approved_answer_hit(answer_id=approved.answer_id)
    return Reused(
        kind=Message.Reuse.APPROVED, text=approved.answer, sources=approved.sources, confidence=1.0,
        model="", cost_avoided=_generation_cost_estimate(route, question, approved.answer),
        details=decision.details(), approved_id=approved.answer_id,
    )


def _cached(question: str, route: Route, vector: QueryVector, nearest: list[Neighbour]) -> Reused | None:
    if not settings.CACHE_ENABLED:
        return None
    scope = route.scope(vector)
    hit = cache.lookup(scope, question, vector, nearest)
    if hit is None:
        return None
    cache.hit_record(hit, question=question, vector=vector, scope=scope)
    entry = hit.entry
    details = {"level": hit.level, **(hit.decision.details() if hit.decision else {"entry_id": entry.pk})}
    avoided = answer_cost(model=entry.model, tokens_in=entry.tokens_in, tokens_out=entry.tokens_out)
    return Reused(
        kind=Message.Reuse.CACHE, text=entry.answer, sources=entry.sources, confidence=entry.confidence or 0.0,
        model=entry.model, cost_avoided=avoided, details=details, entry_id=entry.pk,
    )


def _generation_cost_estimate(route: Route, question: str, answer: str) -> Decimal:
    """What generating this answer would have cost: recent answers' typical input, this output."""
    if not llm_enabled():
        return Decimal(0)  # the offline provider costs nothing
    model = route.prompt.model or settings.LLM_MODEL
    recent = recent_tokens_in(model=model)
    tokens_in = int(statistics.median(recent)) if recent else count_tokens(route.prompt.system_prompt + question)
    return answer_cost(model=model, tokens_in=tokens_in, tokens_out=count_tokens(answer))


# --- storing a generated answer ---------------------------------------------------------------------


def cacheable(*, had_history: bool, injection_suspected: bool, text: str) -> bool:
    """A follow-up's answer depends on the turns before it, so only opening questions are cached."""
    return settings.CACHE_ENABLED and bool(text.strip()) and not had_history and not injection_suspected


def answer_cache(
    *, route: Route, question: str, vector: QueryVector, text: str, sources: list[dict[str, Any]],
    hits: list[SearchHit], cited: tuple[int, ...], confidence: float, model: str, tokens_in: int, tokens_out: int,
    cost: Decimal, message_id: uuid.UUID,
) -> None:
    try:
        cache.entry_store(
            scope=route.scope(vector), question=question, vector=vector, answer=text, sources=sources,
            chunk_ids=[hits[n - 1].chunk_id for n in cited],
            document_ids=sorted({h.document_id for h in hits}), confidence=confidence, model=model,
            tokens_in=tokens_in, tokens_out=tokens_out, cost=cost, message_id=message_id,
        )
    except Exception:
        logger.exception("could not cache answer %s", message_id)
