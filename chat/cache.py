"""The semantic response cache: complete answers reused for the same or an equivalent question.

Two levels, both inside one scope (embedding space, prompt version, knowledge-base version,
language, and for an answer shaped by a visitor's profile that visitor and profile):
- exact: Redis maps the normalised question to an entry id (PostgreSQL answers it when Redis is
  down, from the indexed question hash);
- semantic: the nearest stored questions through a pgvector HNSW index (one partial index per
  embedding space), judged by the precision guard (chat/reuse_guard.py).

Every served entry is re-read from PostgreSQL, so a blocked or expired entry is never served even
if Redis still holds its key. Redis errors are logged and treated as a miss: never an error.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from knowledge.embeddings import QueryVector
from knowledge.models import vector_expression  # the same per-space index expression as chunks'

from .models import CacheCalibration, CacheEntry, Message
from .reuse_guard import Decision, GuardParams, Neighbour, decide

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scope:
    space_id: int
    dimensions: int
    prompt_version_id: int | None
    kb_version: int
    language: str
    visitor_id: str = ""  # set only for answers shaped by this visitor's profile
    profile_hash: str = ""

    def key(self) -> str:
        personal = f":{self.visitor_id}:{self.profile_hash}" if self.visitor_id else ""
        return f"{self.space_id}:{self.prompt_version_id or 0}:{self.kb_version}:{self.language}{personal}"


@dataclass(frozen=True)
class Hit:
    entry: CacheEntry
    level: str  # exact | semantic
    decision: Decision | None


# --- questions -------------------------------------------------------------------------------------


_PUNCTUATION = re.compile(r"[^\w\s]+")


def normalize_question(text: str) -> str:
    """Case, accents' composed forms, punctuation and spacing do not make a different question."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_PUNCTUATION.sub(" ", text).split())


def question_hash(text: str) -> str:
    return hashlib.sha256(normalize_question(text).encode()).hexdigest()


def answer_key(answer: str, chunk_ids: list[int]) -> str:
    """Two answers resting on the same chunks say the same thing, however the model worded them."""
    if chunk_ids:
        basis = "chunks:" + ",".join(map(str, sorted(set(chunk_ids))))
    else:
        basis = "text:" + normalize_question(answer)
    return hashlib.sha256(basis.encode()).hexdigest()


# --- guard parameters ------------------------------------------------------------------------------


_calibration: tuple[float, GuardParams] | None = None


def guard_params() -> GuardParams:
    """The newest calibration's thresholds (re-read every 30 s), else the defaults."""
    global _calibration
    if _calibration and time.monotonic() - _calibration[0] < 30:
        return _calibration[1]
    latest = CacheCalibration.objects.values_list("params", flat=True).first()
    params = GuardParams(**latest) if latest else GuardParams()
    _calibration = (time.monotonic(), params)
    return params


def forget_guard_params() -> None:
    global _calibration
    _calibration = None


# --- Redis, the exact level ------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    # Short timeouts: a slow or dead Redis costs one lookup a few ms, never the answer.
    return redis.Redis.from_url(settings.CACHE_REDIS_URL, socket_timeout=0.2, socket_connect_timeout=0.2)


def _redis_key(scope: Scope, qhash: str) -> str:
    return f"spotter:answers:{scope.key()}:{qhash}"


def _redis_set(key: str, entry_id: int) -> None:
    try:
        _redis().set(key, entry_id, ex=settings.CACHE_TTL_SECONDS)
    except redis.RedisError as exc:
        logger.warning("answer cache: Redis unavailable (%s); entry kept in PostgreSQL only", exc)


def _redis_delete(keys: list[str]) -> None:
    if not keys:
        return
    try:
        _redis().delete(*keys)
    except redis.RedisError as exc:  # the entries are blocked in PostgreSQL, which every hit re-reads
        logger.warning("answer cache: could not delete %d Redis keys (%s)", len(keys), exc)


# --- PostgreSQL, the semantic level ----------------------------------------------------------------


def _versions(scope: Scope) -> Q:
    """Same embedding space, prompt version, knowledge-base version and language."""
    return Q(space_id=scope.space_id, prompt_version_id=scope.prompt_version_id, kb_version=scope.kb_version,
             language=scope.language)


def _in_scope(scope: Scope) -> Q:
    """Servable for this scope: not blocked, not expired, not someone else's."""
    fresh = Q(created_at__gte=timezone.now() - timedelta(seconds=settings.CACHE_TTL_SECONDS))
    return _versions(scope) & Q(blocked_at__isnull=True) & fresh & _personal(scope)


def _personal(scope: Scope) -> Q:
    """A visitor with a profile only ever sees entries made for that same profile, and nobody else does."""
    if not scope.visitor_id:
        return Q(visitor_id="")
    return Q(visitor_id=scope.visitor_id, profile_hash=scope.profile_hash)


def index_name(space_id: int) -> str:
    return f"chat_cacheentry_hnsw_s{int(space_id)}"


def index_sql(space_id: int, dimensions: int) -> str:
    return (
        f"CREATE INDEX IF NOT EXISTS {index_name(space_id)} ON chat_cacheentry USING hnsw "
        f"({vector_expression(space_id, dimensions)} vector_cosine_ops) "
        f"WITH (m = {int(settings.CACHE_HNSW_M)}, ef_construction = {int(settings.CACHE_HNSW_EF_CONSTRUCTION)}) "
        f"WHERE space_id = {int(space_id)} AND blocked_at IS NULL"
    )


_indexed_spaces: set[int] = set()
# DDL on the answer path must never make an answer wait long on another transaction's locks.
INDEX_LOCK_TIMEOUT = "100ms"


def index_ensure(space_id: int, dimensions: int) -> None:
    """The space's HNSW index over servable entries, created with the first entry stored in it.

    If another transaction holds the table, give up at once and try again with the next entry
    (lookups work without the index, slower). Answers finishing together race to create it:
    the losers find the winner's index (a duplicate catalog name) and use it."""
    if space_id in _indexed_spaces:
        return
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{INDEX_LOCK_TIMEOUT}'")
            cursor.execute(index_sql(space_id, dimensions))
    except IntegrityError:
        pass  # created by a concurrent transaction that committed first
    except OperationalError as exc:
        logger.warning("answer cache: index for space %s not created yet (%s)", space_id, exc)
        return
    _indexed_spaces.add(space_id)


def neighbours(scope: Scope, vector: QueryVector, k: int) -> list[Neighbour]:
    """The k nearest servable questions in scope, nearest first, as the guard sees them."""
    sql, params = neighbours_query(scope, vector, k)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for _ in range(NEIGHBOURS_RESULT):
            cursor.nextset()
        return neighbours_from(cursor.fetchall())


# The neighbours' rows are this result of `neighbours_query` (counted from 0).
NEIGHBOURS_RESULT = 2


def neighbours_query(scope: Scope, vector: QueryVector, k: int) -> tuple[str, list[Any]]:
    """The statements that read the neighbours (what the guard reads; the entry a hit serves is
    read afterwards, by id) and their parameters. Two SET LOCALs first, which hold to the end of
    the query string they are sent in: anything sent with it goes before it."""
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
    sql = (
        f"SELECT id, question, answer_key, 1 - ({distance}) AS similarity FROM chat_cacheentry "
        f"WHERE space_id = {int(scope.space_id)} AND blocked_at IS NULL "
        f"AND prompt_version_id IS NOT DISTINCT FROM %s AND kb_version = %s AND language = %s "
        f"AND created_at >= %s AND {personal} ORDER BY {distance} LIMIT {int(k)}"
    )
    # A narrower search than the knowledge base's: ten neighbours, not forty candidates. And the
    # index even for a small cache: the planner's pick below a few thousand entries, a scan
    # de-TOASTing every vector, cost ~3x the index's time at 1,600 entries, and grows.
    # One round trip: PostgreSQL runs the statements of one query string as one implicit
    # transaction (outside a transaction block), so the SET LOCALs end with it.
    settings_sql = (f"SET LOCAL hnsw.ef_search = {int(settings.CACHE_HNSW_EF_SEARCH)}; "
                    "SET LOCAL enable_seqscan = off; ")
    return settings_sql + sql, params


def neighbours_from(rows: list[tuple[Any, ...]]) -> list[Neighbour]:
    return [Neighbour(pk, question, key, float(similarity)) for pk, question, key, similarity in rows]


# --- lookup and store ------------------------------------------------------------------------------


def lookup(
    scope: Scope, question: str, vector: QueryVector | None, nearest: list[Neighbour] | None = None
) -> Hit | None:
    """An entry to serve for this question, or None. Exact first, then semantic under the guard.

    `nearest`: the neighbours, already read (with `guard_params().neighbours`)."""
    entry = _exact(scope, question_hash(question))
    if entry is not None:
        return Hit(entry, "exact", None)
    if vector is None or vector.space_id != scope.space_id:
        return None
    params = guard_params()
    if nearest is None:
        nearest = neighbours(scope, vector, params.neighbours)
    decision = decide(question, nearest, params)
    if not decision.accepted:
        return None
    # Read again in full: still servable (a thumbs-down in between blocks it), or no hit.
    entry = _in_scope_entries(scope).filter(pk=decision.neighbour.entry_id).first()
    return Hit(entry, "semantic", decision) if entry is not None else None


def _exact(scope: Scope, qhash: str) -> CacheEntry | None:
    """Redis knows the question's entry; PostgreSQL (its indexed hash) stands in when Redis is down."""
    try:
        entry_id = _redis().get(_redis_key(scope, qhash))
    except redis.RedisError as exc:
        logger.warning("answer cache: Redis unavailable (%s); using PostgreSQL", exc)
        return _servable(scope, qhash).order_by("-created_at").first()
    # Re-read from PostgreSQL: an entry blocked or expired since stays unserved. (Built only then:
    # a miss, nearly every question, costs the Redis GET alone.)
    return _servable(scope, qhash).filter(pk=int(entry_id)).first() if entry_id else None


def _servable(scope: Scope, qhash: str) -> QuerySet[CacheEntry]:
    return _in_scope_entries(scope).filter(question_hash=qhash)


def _in_scope_entries(scope: Scope) -> QuerySet[CacheEntry]:
    return CacheEntry.objects.filter(_in_scope(scope)).defer("embedding")


def hit_record(hit: Hit, *, question: str, vector: QueryVector | None, scope: Scope) -> None:
    """Count the hit; a question served semantically becomes an alias of the entry, so the next
    paraphrase finds more agreeing neighbours (and a thumbs-down blocks it with the entry)."""
    now = timezone.now()
    CacheEntry.objects.filter(pk=hit.entry.pk).update(hits=F("hits") + 1, last_hit_at=now)
    if hit.level != "semantic" or vector is None:
        return
    origin = hit.entry.alias_of_id or hit.entry.pk
    alias = CacheEntry.objects.create(
        question=question, question_hash=question_hash(question), answer=hit.entry.answer,
        answer_key=hit.entry.answer_key, sources=hit.entry.sources, chunk_ids=hit.entry.chunk_ids,
        document_ids=hit.entry.document_ids, confidence=hit.entry.confidence, space_id=scope.space_id,
        embedding=vector.vector, prompt_version_id=scope.prompt_version_id, kb_version=scope.kb_version,
        language=scope.language, visitor_id=scope.visitor_id, profile_hash=scope.profile_hash,
        model=hit.entry.model, tokens_in=hit.entry.tokens_in, tokens_out=hit.entry.tokens_out,
        cost=hit.entry.cost, alias_of_id=origin, last_hit_at=now,
    )
    _redis_set(_redis_key(scope, alias.question_hash), alias.pk)


def entry_store(
    *, scope: Scope, question: str, vector: QueryVector, answer: str, sources: list[dict[str, Any]],
    chunk_ids: list[int], document_ids: list[int], confidence: float, model: str, tokens_in: int,
    tokens_out: int, cost: Any, message_id: Any,
) -> CacheEntry | None:
    """Store a complete answer; None when this question is already cached in the scope, or when
    this question or this answer was blocked there (a thumbs-down is not undone by asking again)."""
    qhash = question_hash(question)
    key = answer_key(answer, chunk_ids)
    cached = _in_scope(scope) & Q(question_hash=qhash)
    blocked = _versions(scope) & Q(blocked_at__isnull=False) & (Q(question_hash=qhash) | Q(answer_key=key))
    if CacheEntry.objects.filter(cached | blocked).exists():  # one round trip on the answer path
        return None
    index_ensure(scope.space_id, scope.dimensions)
    entry = CacheEntry.objects.create(
        question=question, question_hash=qhash, answer=answer, answer_key=key,
        sources=sources, chunk_ids=chunk_ids, document_ids=document_ids, confidence=confidence,
        space_id=scope.space_id, embedding=vector.vector, prompt_version_id=scope.prompt_version_id,
        kb_version=scope.kb_version, language=scope.language, visitor_id=scope.visitor_id,
        profile_hash=scope.profile_hash, model=model, tokens_in=tokens_in, tokens_out=tokens_out, cost=cost,
        message_id=message_id,
    )
    _redis_set(_redis_key(scope, qhash), entry.pk)
    return entry


# --- blocking, invalidation, eviction --------------------------------------------------------------


def _scope_of(entry: CacheEntry) -> Scope:
    return Scope(entry.space_id, 0, entry.prompt_version_id, entry.kb_version, entry.language,
                 entry.visitor_id, entry.profile_hash)


def _forget_in_redis(entries: list[CacheEntry]) -> None:
    keys = [_redis_key(_scope_of(e), e.question_hash) for e in entries]
    transaction.on_commit(lambda: _redis_delete(keys))


def entries_block(entries: Any, reason: str) -> int:
    """Never serve these again; their aliases (questions served the same answer) go with them."""
    ids = list(entries.values_list("pk", flat=True))
    if not ids:
        return 0
    group = CacheEntry.objects.filter(Q(pk__in=ids) | Q(alias_of_id__in=ids) | Q(
        alias_of_id__in=CacheEntry.objects.filter(pk__in=ids).values("alias_of_id")
    ) | Q(pk__in=CacheEntry.objects.filter(pk__in=ids).values("alias_of_id"))).filter(blocked_at__isnull=True)
    rows = list(group)
    blocked = CacheEntry.objects.filter(pk__in=[e.pk for e in rows]).update(
        blocked_at=timezone.now(), blocked_reason=reason[:200]
    )
    _forget_in_redis(rows)
    return blocked


def block_for_message(*, message_id: Any, reason: str) -> int:
    """A thumbs-down or a rejection in review: the answer it was, or was served from, is blocked."""
    reused = Message.objects.filter(pk=message_id).values("reused_entry_id")
    return entries_block(CacheEntry.objects.filter(Q(message_id=message_id) | Q(pk__in=reused)), reason)


def invalidate_documents(document_ids: list[int]) -> int:
    """Entries citing a changed or deleted document are dropped (called inside the change's transaction)."""
    doomed = list(CacheEntry.objects.filter(document_ids__overlap=list(document_ids)))
    if not doomed:
        return 0
    _forget_in_redis(doomed)
    CacheEntry.objects.filter(pk__in=[e.pk for e in doomed]).delete()
    return len(doomed)


def evict(*, current_kb_version: int, active_space_id: int | None) -> dict[str, int]:
    """Drop expired, out-of-scope and long-blocked entries, then the least recently (or least
    frequently) hit beyond CACHE_MAX_ENTRIES."""
    now = timezone.now()
    stale = CacheEntry.objects.filter(
        Q(created_at__lt=now - timedelta(seconds=settings.CACHE_TTL_SECONDS))
        | Q(kb_version__lt=current_kb_version)
        | (~Q(space_id=active_space_id) if active_space_id else Q(pk__in=[]))
    ).filter(blocked_at__isnull=True)
    counts = {"expired": stale.delete()[0]}
    servable = CacheEntry.objects.filter(blocked_at__isnull=True)
    over = servable.count() - settings.CACHE_MAX_ENTRIES
    counts["evicted"] = 0
    if over > 0:
        order = ["hits", "last_hit_at", "created_at"] if settings.CACHE_EVICTION == "lfu" else ["last_hit_at",
                                                                                                "created_at"]
        ordering = [F(f).asc(nulls_first=True) for f in order]
        victims = list(servable.order_by(*ordering).values_list("pk", flat=True)[:over])
        counts["evicted"] = CacheEntry.objects.filter(pk__in=victims).delete()[0]
    return counts


def flush_scope_indexes(active_space_id: int | None) -> None:
    """Indexes of retired spaces are dropped once their entries are gone."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'chat_cacheentry' "
                       "AND indexname LIKE 'chat_cacheentry_hnsw_s%%'")
        for (name,) in cursor.fetchall():
            if active_space_id is None or name != index_name(active_space_id):
                cursor.execute(f"DROP INDEX IF EXISTS {name}")
                _indexed_spaces.discard(int(name.rsplit("_s", 1)[1]))
