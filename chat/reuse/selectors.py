"""Reads of answer reuse: is there a stored answer to serve for this question?

Approved answers first (trainer-verified), then the answer cache's two levels, both inside the
question's scope:
- exact: Redis maps the normalised question to an entry id (PostgreSQL answers it when Redis is
  down, from the indexed question hash);
- semantic: the nearest stored questions through a pgvector HNSW index (one partial index per
  embedding space), judged by the precision guard (guard.py).

A served entry is always re-read from PostgreSQL, so a blocked or expired entry is never served
even while Redis still holds its key. Redis errors are logged and count as a miss.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from knowledge.embeddings import QueryVector
from knowledge.models import vector_expression
from knowledge.tokens import count_tokens
from monitoring.selectors import recent_tokens_in
from review.selectors import ApprovedCandidate, approved_candidates, nearest_unreviewed

from ..llm.pricing import answer_cost
from ..models import CacheCalibration, CacheEntry, CacheVote, Message
from .guard import Decision, GuardParams, Neighbour, decide
from .scope import Scope, answer_key, question_hash, redis_client, redis_key

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hit:
    entry: CacheEntry
    level: str  # exact | semantic
    decision: Decision | None


@dataclass(frozen=True)
class Reused:
    """A stored answer to serve instead of generating one."""

    kind: str  # Message.Reuse
    text: str
    sources: list[dict[str, Any]]
    confidence: float
    model: str
    cost_avoided: Decimal
    details: dict[str, Any] = field(default_factory=dict)
    cache_hit: Hit | None = None
    approved_id: int | None = None


@dataclass(frozen=True)
class ReuseQuery:
    """What the reuse step looks up with."""

    question: str
    vector: QueryVector
    scope: Scope
    prompt_name: str
    model: str  # the model that would generate the answer, for the cost a reuse avoids
    system_prompt: str
    visitor_id: str = ""  # who asks: a cached answer they voted down is not served to them again


def reuse_find(query: ReuseQuery) -> Reused | None:
    """Approved answer, else cached answer, else None."""
    approved = approved_candidates(
        vector=query.vector, language=query.scope.language, prompt_name=query.prompt_name,
        exclude_prompt_version_ids=sorted(query.scope.foreign_prompt_version_ids),
    )
    return _approved(query, approved) or _cached(query)


# --- approved answers -------------------------------------------------------------------------------


def _approved_params() -> GuardParams:
    # One question per approved answer: closeness and the gap to the next approved answer decide.
    return GuardParams(min_similarity=settings.APPROVED_MIN_SIMILARITY, min_gap=settings.APPROVED_MIN_GAP,
                       min_support=1, near_duplicate=settings.APPROVED_MIN_SIMILARITY,
                       near_duplicate_gap=settings.APPROVED_MIN_GAP)


def _approved(query: ReuseQuery, candidates: list[ApprovedCandidate]) -> Reused | None:
    # Keyed by their text: the same answer approved twice agrees with itself; two different
    # answers to one question disagree, and neither is served until a trainer settles it.
    nearest = [Neighbour(c.answer_id, c.question, answer_key(c.answer, []), c.similarity) for c in candidates]
    decision = decide(query.question, nearest, _approved_params())
    if not decision.accepted or decision.neighbour is None:
        return None
    if nearest_unreviewed(vector=query.vector) > decision.similarity - settings.APPROVED_UNREVIEWED_GAP:
        return None  # the question is as close to one nobody has verified: the approval may not cover it
    approved = next(c for c in candidates if c.answer_id == decision.neighbour.entry_id)
    return Reused(
        kind=Message.Reuse.APPROVED, text=approved.answer, sources=approved.sources, confidence=1.0,
        model="", cost_avoided=_generation_cost_estimate(query, approved.answer),
        details=decision.details(), approved_id=approved.answer_id,
    )


def _generation_cost_estimate(query: ReuseQuery, answer: str) -> Decimal:
    """What generating this answer would have cost: recent answers' typical input, this output."""
    if not query.model:
        return Decimal(0)  # the offline provider costs nothing
    recent = recent_tokens_in(model=query.model)
    tokens_in = int(statistics.median(recent)) if recent else count_tokens(query.system_prompt + query.question)
    return answer_cost(model=query.model, tokens_in=tokens_in, tokens_out=count_tokens(answer))


# --- the answer cache -------------------------------------------------------------------------------


def _cached(query: ReuseQuery) -> Reused | None:
    if not settings.CACHE_ENABLED:
        return None
    hit = lookup(query.scope, query.question, query.vector, visitor_id=query.visitor_id)
    if hit is None:
        return None
    entry = hit.entry
    details = {"level": hit.level, **(hit.decision.details() if hit.decision else {"entry_id": entry.pk})}
    return Reused(
        kind=Message.Reuse.CACHE, text=entry.answer, sources=entry.sources, confidence=entry.confidence or 0.0,
        model=entry.model, cost_avoided=answer_cost(model=entry.model, tokens_in=entry.tokens_in,
                                                    tokens_out=entry.tokens_out),
        details=details, cache_hit=hit,
    )


def lookup(scope: Scope, question: str, vector: QueryVector | None, *, visitor_id: str = "") -> Hit | None:
    """An entry to serve for this question, or None. Exact first, then semantic under the guard.
    An entry `visitor_id` voted down is a miss for them (they get a new answer), not for others."""
    entry = _exact(scope, question_hash(question), visitor_id)
    if entry is not None:
        return Hit(entry, "exact", None)
    if vector is None or vector.space_id != scope.space_id:
        return None
    params = guard_params()
    decision = decide(question, neighbours(scope, vector, params.neighbours), params)
    if not decision.accepted or decision.neighbour is None:
        return None
    # Read again in full: still servable (blocked or voted down in between), or no hit.
    entry = servable_entries(scope, visitor_id).filter(pk=decision.neighbour.entry_id).first()
    return Hit(entry, "semantic", decision) if entry is not None else None


def _exact(scope: Scope, qhash: str, visitor_id: str) -> CacheEntry | None:
    """Redis knows the question's entry; PostgreSQL (its indexed hash) stands in when Redis is down."""
    try:
        entry_id = redis_client().get(redis_key(scope, qhash))
    except redis.RedisError as exc:
        logger.warning("answer cache: Redis unavailable (%s); using PostgreSQL", exc)
        return servable_entries(scope, visitor_id).filter(question_hash=qhash).order_by("-created_at").first()
    # Re-read from PostgreSQL: an entry blocked or expired since stays unserved. A miss, nearly
    # every question, costs the Redis GET alone.
    if not entry_id:
        return None
    return servable_entries(scope, visitor_id).filter(question_hash=qhash, pk=int(entry_id)).first()


def servable_entries(scope: Scope, visitor_id: str = "") -> QuerySet[CacheEntry]:
    """In scope, less what this visitor voted down (the vote is on an alias's original): one
    index probe inside the re-read of a hit, nothing on a miss."""
    entries = in_scope_entries(scope)
    if not visitor_id:
        return entries
    voted = CacheVote.objects.filter(Q(entry_id=OuterRef("pk")) | Q(entry_id=OuterRef("alias_of_id")),
                                     visitor_id=visitor_id)
    return entries.exclude(Exists(voted))


def same_versions(scope: Scope) -> Q:
    """Same embedding space, prompt version, knowledge-base version and language."""
    return Q(space_id=scope.space_id, prompt_version_id=scope.prompt_version_id, kb_version=scope.kb_version,
             language=scope.language)


def in_scope(scope: Scope) -> Q:
    """Servable for this scope: same versions, not blocked, not expired, not someone else's."""
    fresh = Q(created_at__gte=timezone.now() - timedelta(seconds=settings.CACHE_TTL_SECONDS))
    return same_versions(scope) & Q(blocked_at__isnull=True) & fresh & _personal(scope)


def _personal(scope: Scope) -> Q:
    """A visitor with a profile only ever sees entries made for that same profile, and nobody else does."""
    if not scope.visitor_id:
        return Q(visitor_id="")
    return Q(visitor_id=scope.visitor_id, profile_hash=scope.profile_hash)


def in_scope_entries(scope: Scope) -> QuerySet[CacheEntry]:
    return CacheEntry.objects.filter(in_scope(scope)).defer("embedding")


def neighbours(scope: Scope, vector: QueryVector, k: int) -> list[Neighbour]:
    """The k nearest servable questions in scope, nearest first: only what the guard judges (the
    entry a hit serves is read afterwards, by id)."""
    sql, params = _neighbours_statements(scope, vector, k)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        cursor.nextset()  # past the two SET LOCALs
        cursor.nextset()
        rows = cursor.fetchall()
    return [Neighbour(pk, question, key, float(similarity)) for pk, question, key, similarity in rows]


def _neighbours_statements(scope: Scope, vector: QueryVector, k: int) -> tuple[str, list[Any]]:
    """Two SET LOCALs, then the nearest-neighbour SELECT, sent as one query string: PostgreSQL runs
    them as one implicit transaction, so the settings end with it (one round trip).

    `enable_seqscan = off`: below a few thousand entries the planner prefers a scan that
    de-TOASTs every vector, which grows with the cache; the index stays fast at any size."""
    expression = vector_expression(scope.space_id, scope.dimensions)
    literal = vector.literal()
    personal = "visitor_id = %s AND profile_hash = %s" if scope.visitor_id else "visitor_id = ''"
    params: list[Any] = [literal, scope.prompt_version_id, scope.kb_version, scope.language,
                         timezone.now() - timedelta(seconds=settings.CACHE_TTL_SECONDS)]
    if scope.visitor_id:
        params += [scope.visitor_id, scope.profile_hash]
    params.append(literal)
    distance = f"{expression} <=> %s::vector({int(scope.dimensions)})"
    # ORDER BY the indexed expression's distance, ascending, or the planner cannot use the index.
    select = (
        f"SELECT id, question, answer_key, 1 - ({distance}) AS similarity FROM chat_cacheentry "
        f"WHERE space_id = {int(scope.space_id)} AND blocked_at IS NULL "
        f"AND prompt_version_id IS NOT DISTINCT FROM %s AND kb_version = %s AND language = %s "
        f"AND created_at >= %s AND {personal} ORDER BY {distance} LIMIT {int(k)}"
    )
    settings_sql = (f"SET LOCAL hnsw.ef_search = {int(settings.CACHE_HNSW_EF_SEARCH)}; "
                    "SET LOCAL enable_seqscan = off; ")
    return settings_sql + select, params


# --- the guard's parameters ------------------------------------------------------------------------

# How long a process keeps using a calibration after a newer one was saved elsewhere.
GUARD_PARAMS_TTL_SECONDS = 30.0
_calibration: tuple[float, GuardParams] | None = None


def guard_params() -> GuardParams:
    """The newest calibration's thresholds, else the defaults."""
    global _calibration
    if _calibration and time.monotonic() - _calibration[0] < GUARD_PARAMS_TTL_SECONDS:
        return _calibration[1]
    latest = CacheCalibration.objects.values_list("params", flat=True).first()
    params = GuardParams(**latest) if latest else GuardParams()
    _calibration = (time.monotonic(), params)
    return params


def forget_guard_params() -> None:
    global _calibration
    _calibration = None
