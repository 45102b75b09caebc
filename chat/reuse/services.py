"""Writes of answer reuse: storing answers, counting hits, blocking, invalidation, eviction."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import redis
from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from knowledge.embeddings import QueryVector
from knowledge.models import vector_expression
from review.services import approved_answer_hit

from ..models import CacheEntry, CacheVote, Feedback, Message
from .scope import Scope, answer_key, question_hash, redis_client, redis_key
from .selectors import Hit, Reused, in_scope, same_versions

logger = logging.getLogger(__name__)


def reuse_record(*, reused: Reused, question: str, vector: QueryVector, scope: Scope) -> None:
    """Count a served reuse where it came from."""
    if reused.approved_id is not None:
        approved_answer_hit(answer_id=reused.approved_id)
    if reused.cache_hit is not None:
        hit_record(reused.cache_hit, question=question, vector=vector, scope=scope)


def hit_record(hit: Hit, *, question: str, vector: QueryVector | None, scope: Scope) -> None:
    """Count the hit; a question served semantically becomes an alias of the entry, so the next
    paraphrase finds more agreeing neighbours (and a block takes it with the entry)."""
    now = timezone.now()
    CacheEntry.objects.filter(pk=hit.entry.pk).update(hits=F("hits") + 1, last_hit_at=now)
    if hit.level != "semantic" or vector is None:
        return
    entry = hit.entry
    alias = CacheEntry.objects.create(
        question=question, question_hash=question_hash(question), answer=entry.answer,
        answer_key=entry.answer_key, sources=entry.sources, chunk_ids=entry.chunk_ids,
        document_ids=entry.document_ids, confidence=entry.confidence, space_id=scope.space_id,
        embedding=vector.vector, prompt_version_id=scope.prompt_version_id, kb_version=scope.kb_version,
        language=scope.language, visitor_id=scope.visitor_id, profile_hash=scope.profile_hash,
        model=entry.model, tokens_in=entry.tokens_in, tokens_out=entry.tokens_out,
        cost=entry.cost, alias_of_id=entry.alias_of_id or entry.pk, last_hit_at=now,
    )
    _redis_set(redis_key(scope, alias.question_hash), alias.pk)


# --- storing a generated answer ---------------------------------------------------------------------


@dataclass(frozen=True)
class Answered:
    """A generated answer as the cache stores it."""

    question: str
    text: str
    sources: list[dict[str, Any]]
    chunk_ids: list[int]  # the chunks it cites
    document_ids: list[int]  # every document it was given: a change to any of them drops the entry
    confidence: float
    model: str
    tokens_in: int
    tokens_out: int
    cost: Decimal
    message_id: uuid.UUID


def cacheable(*, had_history: bool, injection_suspected: bool, text: str) -> bool:
    """A follow-up's answer depends on the turns before it, so only opening questions are cached."""
    return settings.CACHE_ENABLED and bool(text.strip()) and not had_history and not injection_suspected


def answer_cache(*, scope: Scope, vector: QueryVector, answered: Answered) -> CacheEntry | None:
    """Store a generated answer; never raises (caching may fail, the answer stands)."""
    try:
        return entry_store(scope=scope, vector=vector, answered=answered)
    except Exception:
        logger.exception("could not cache answer %s", answered.message_id)
        return None


def entry_store(*, scope: Scope, vector: QueryVector, answered: Answered) -> CacheEntry | None:
    """None when this question is already cached in the scope, or when this question or this
    answer was blocked there (a block is not undone by asking again)."""
    qhash = question_hash(answered.question)
    key = answer_key(answered.text, answered.chunk_ids)
    cached = in_scope(scope) & Q(question_hash=qhash)
    blocked = same_versions(scope) & Q(blocked_at__isnull=False) & (Q(question_hash=qhash) | Q(answer_key=key))
    if CacheEntry.objects.filter(cached | blocked).exists():
        return None
    index_ensure(scope.space_id, scope.dimensions)
    entry = CacheEntry.objects.create(
        question=answered.question, question_hash=qhash, answer=answered.text, answer_key=key,
        sources=answered.sources, chunk_ids=answered.chunk_ids, document_ids=answered.document_ids,
        confidence=answered.confidence, space_id=scope.space_id, embedding=vector.vector,
        prompt_version_id=scope.prompt_version_id, kb_version=scope.kb_version, language=scope.language,
        visitor_id=scope.visitor_id, profile_hash=scope.profile_hash, model=answered.model,
        tokens_in=answered.tokens_in, tokens_out=answered.tokens_out, cost=answered.cost,
        message_id=answered.message_id,
    )
    _redis_set(redis_key(scope, qhash), entry.pk)
    return entry


def _redis_set(key: str, entry_id: int) -> None:
    try:
        redis_client().set(key, entry_id, ex=settings.CACHE_TTL_SECONDS)
    except redis.RedisError as exc:
        logger.warning("answer cache: Redis unavailable (%s); entry kept in PostgreSQL only", exc)


def _redis_delete(keys: list[str]) -> None:
    if not keys:
        return
    try:
        redis_client().delete(*keys)
    except redis.RedisError as exc:  # the entries are blocked in PostgreSQL, which every hit re-reads
        logger.warning("answer cache: could not delete %d Redis keys (%s)", len(keys), exc)


# --- the per-space index ---------------------------------------------------------------------------


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


def indexes_forget() -> None:
    """Forget which indexes this process created (their tables were emptied or dropped)."""
    _indexed_spaces.clear()


def flush_scope_indexes(active_space_id: int | None) -> None:
    """Indexes of retired spaces are dropped once their entries are gone."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'chat_cacheentry' "
                       "AND indexname LIKE 'chat_cacheentry_hnsw_s%%'")
        for (name,) in cursor.fetchall():
            if active_space_id is None or name != index_name(active_space_id):
                cursor.execute(f"DROP INDEX IF EXISTS {name}")
                _indexed_spaces.discard(int(name.rsplit("_s", 1)[1]))


# --- blocking, invalidation, eviction --------------------------------------------------------------


def _scope_of(entry: CacheEntry) -> Scope:
    return Scope(entry.space_id, 0, entry.prompt_version_id, entry.kb_version, entry.language,
                 entry.visitor_id, entry.profile_hash)


def _forget_in_redis(entries: list[CacheEntry]) -> None:
    keys = [redis_key(_scope_of(e), e.question_hash) for e in entries]
    transaction.on_commit(lambda: _redis_delete(keys))


def entries_block(entries: QuerySet[CacheEntry], reason: str) -> int:
    """Never serve these again; their aliases (questions served the same answer) go with them."""
    ids = list(entries.values_list("pk", flat=True))
    if not ids:
        return 0
    chosen = CacheEntry.objects.filter(pk__in=ids)
    group = CacheEntry.objects.filter(
        Q(pk__in=ids) | Q(alias_of_id__in=ids) | Q(alias_of_id__in=chosen.values("alias_of_id"))
        | Q(pk__in=chosen.values("alias_of_id"))
    ).filter(blocked_at__isnull=True)
    rows = list(group)
    blocked = CacheEntry.objects.filter(pk__in=[e.pk for e in rows]).update(
        blocked_at=timezone.now(), blocked_reason=reason[:200]
    )
    _forget_in_redis(rows)
    return blocked


def block_for_message(*, message_id: uuid.UUID, reason: str) -> int:
    """A trainer's rejection in review: the answer it was, or was served from, is blocked."""
    reused = Message.objects.filter(pk=message_id).values("reused_entry_id")
    return entries_block(CacheEntry.objects.filter(Q(message_id=message_id) | Q(pk__in=reused)), reason)


# --- visitors' thumbs-down -------------------------------------------------------------------------


def downvote_record(*, feedback: Feedback, visitor_id: str) -> bool:
    """A visitor's thumbs-down on an answer served from, or stored as, a cache entry. That visitor
    is not served the entry again (selectors.lookup); it is blocked for everyone once
    CACHE_BLOCK_DOWNVOTES distinct visitors have voted it down, so one visitor alone (however many
    times they vote) cannot take a shared answer away from the others. True when this vote blocked it."""
    entry_id = _voted_entry_id(feedback.message)
    if entry_id is None:
        return False
    with transaction.atomic():
        # Votes on one entry wait for each other here, so two last votes arriving together both count.
        if CacheEntry.objects.select_for_update().filter(pk=entry_id).values_list("pk", flat=True).first() is None:
            return False  # deleted meanwhile
        CacheVote.objects.update_or_create(feedback=feedback, defaults={"entry_id": entry_id, "visitor_id": visitor_id})
        voters = CacheVote.objects.filter(entry_id=entry_id).values("visitor_id").distinct().count()
        if voters < settings.CACHE_BLOCK_DOWNVOTES:
            return False
        return entries_block(CacheEntry.objects.filter(pk=entry_id), f"thumbs down from {voters} visitors") > 0


def downvote_withdraw(*, feedback: Feedback) -> None:
    """The visitor changed their thumbs-down to a thumbs-up: it no longer counts (a block stays)."""
    CacheVote.objects.filter(feedback=feedback).delete()


def _voted_entry_id(message: Message) -> int | None:
    """The entry the answer was served from, else the one it was stored as; an alias counts for its original."""
    entries = CacheEntry.objects.annotate(original=Coalesce("alias_of_id", "pk"))
    if message.reused_entry_id is not None:
        entries = entries.filter(pk=message.reused_entry_id)
    else:
        entries = entries.filter(message_id=message.pk)
    return entries.values_list("original", flat=True).first()


def blocked_evict(*, older_than: timedelta) -> int:
    """Blocked entries are kept a while so the same answer is not cached again at once, then deleted."""
    return CacheEntry.objects.filter(blocked_at__lt=timezone.now() - older_than).delete()[0]


def block_for_model(*, model: str, reason: str) -> int:
    """Answers a model no longer served made are not reused as the new one's."""
    return entries_block(CacheEntry.objects.filter(model=model, blocked_at__isnull=True), reason)


def invalidate_documents(document_ids: list[int]) -> int:
    """Entries citing a changed or deleted document are dropped (called inside the change's transaction)."""
    doomed = list(CacheEntry.objects.filter(document_ids__overlap=list(document_ids)))
    if not doomed:
        return 0
    _forget_in_redis(doomed)
    CacheEntry.objects.filter(pk__in=[e.pk for e in doomed]).delete()
    return len(doomed)


def evict(*, current_kb_version: int, active_space_id: int | None) -> dict[str, int]:
    """Drop expired and out-of-scope entries, then the least recently (or least frequently) hit
    beyond CACHE_MAX_ENTRIES (blocked ones go with `blocked_evict`)."""
    now = timezone.now()
    stale = CacheEntry.objects.filter(
        Q(created_at__lt=now - timedelta(seconds=settings.CACHE_TTL_SECONDS))
        | Q(kb_version__lt=current_kb_version)
        | (~Q(space_id=active_space_id) if active_space_id else Q(pk__in=[]))
    ).filter(blocked_at__isnull=True)
    counts = {"expired": stale.delete()[0], "evicted": 0}
    servable = CacheEntry.objects.filter(blocked_at__isnull=True)
    over = servable.count() - settings.CACHE_MAX_ENTRIES
    if over > 0:
        fields = ["hits", "last_hit_at", "created_at"] if settings.CACHE_EVICTION == "lfu" else [
            "last_hit_at", "created_at"]
        ordering = [F(f).asc(nulls_first=True) for f in fields]
        victims = list(servable.order_by(*ordering).values_list("pk", flat=True)[:over])
        counts["evicted"] = CacheEntry.objects.filter(pk__in=victims).delete()[0]
    return counts
