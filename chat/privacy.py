"""A visitor's data: export all of it as JSON, erase all of it, and delete conversations past RETENTION_DAYS.

What belongs to a visitor (its footprint): rows keyed by its visitor id, its conversations and their
messages, and what was built from them in any app: feedback and cache votes, cache entries, review items
with their decisions, approved answers made from its messages and the evaluation cases made from those,
monitoring's answer and handoff facts, shadow answers, and every Redis key that names the visitor, one of
its conversations or one of its messages (stream logs, limits, answer slot, budget counters, tickets).

An erased visitor's token stops working: a revocation mark keyed by a hash of the id, in Redis for as long
as a token lives (`visitor_erased`, checked where a token is read). The ErasureRecord keeps the hash, who
asked and the counts, never the data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from typing import Any

import redis
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from pgvector.django import VectorField

from experiments.models import ShadowAnswer
from monitoring.models import AnswerFact, HandoffFact, TopicCluster
from review.models import ApprovedAnswer, EvaluationCase, Handoff, ReviewItem

from .models import CacheEntry, CacheVote, Conversation, ErasureRecord, Feedback, Message, VisitorFact, VisitorProfile
from .reuse.scope import Scope, question_hash, redis_key

logger = logging.getLogger(__name__)

EXPORT_FORMAT = "spotter-visitor-export/1"
RETENTION_BATCH = 200  # conversations per transaction: a long retention backlog never holds locks for long
# Trainer internals a visitor's export leaves out of its review items: who worked them and how they ranked.
_REVIEW_ITEM_FIELDS = ("id", "message", "status", "reason", "reasons", "feedback_reason", "created_at", "decided_at")
_KEY_PARTS = re.compile(rb"[:.]")  # Redis key parts: `spotter:stream:<id>`, `asgi:group:conversation.<id>`


def visitor_hash(visitor_id: str) -> str:
    """One-way: visitor ids are random (uuid4), so the hash cannot be walked back by guessing."""
    return hashlib.sha256(f"spotter.visitor:{visitor_id}".encode()).hexdigest()


# --- the footprint -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Footprint:
    """The ids a visitor's (or a set of conversations') data hangs on, read once before anything goes."""

    visitor_ids: list[str]
    conversation_ids: list[uuid.UUID]
    message_ids: list[uuid.UUID]
    questions: list[str] = field(default_factory=list)  # its questions' text, as stored

    @property
    def question_hashes(self) -> list[str]:
        """Shared cache aliases of its questions are found by these (an alias does not say who asked)."""
        return sorted({question_hash(text) for text in self.questions})

    def redis_needles(self) -> set[str]:
        ids = [*self.conversation_ids, *self.message_ids]
        return {*self.visitor_ids, *(str(i) for i in ids), *(i.hex for i in ids)}


def footprint_of_visitor(visitor_id: str) -> Footprint:
    conversations = Conversation.objects.filter(visitor_id=visitor_id).values_list("pk", flat=True)
    return _footprint(visitor_ids=[visitor_id], conversation_ids=list(conversations))


def _footprint(*, visitor_ids: list[str], conversation_ids: list[uuid.UUID]) -> Footprint:
    messages = list(Message.objects.filter(conversation_id__in=conversation_ids).values_list("pk", "role", "text"))
    questions = [text for _, role, text in messages if role == Message.Role.USER and text]
    return Footprint(visitor_ids, conversation_ids, [pk for pk, _, _ in messages], questions)


def _owned(fp: Footprint) -> dict[str, QuerySet[Any]]:
    """Every kind of row the footprint covers, by the name the export gives it."""
    messages, conversations, visitors = fp.message_ids, fp.conversation_ids, fp.visitor_ids
    approved = ApprovedAnswer.objects.filter(
        Q(source_message_id__in=messages) | Q(review_item__message_id__in=messages))
    return {
        "profile": VisitorProfile.objects.filter(visitor_id__in=visitors),
        "facts": VisitorFact.objects.filter(profile__visitor_id__in=visitors),
        "conversations": Conversation.objects.filter(pk__in=conversations),
        "messages": Message.objects.filter(conversation_id__in=conversations).order_by("created_at", "sequence"),
        "feedback": Feedback.objects.filter(message_id__in=messages),
        "handoffs": Handoff.objects.filter(conversation_id__in=conversations),
        "review_items": ReviewItem.objects.filter(message_id__in=messages),
        "approved_answers": approved,
        "evaluation_cases": EvaluationCase.objects.filter(approved_answer__in=approved),
        "cache_entries": CacheEntry.objects.filter(Q(message_id__in=messages) | Q(visitor_id__in=visitors)),
        "cache_votes": CacheVote.objects.filter(Q(visitor_id__in=visitors) | Q(feedback__message_id__in=messages)),
        "answer_facts": AnswerFact.objects.filter(Q(conversation_id__in=conversations) | Q(visitor_id__in=visitors)),
        "handoff_facts": HandoffFact.objects.filter(conversation_id__in=conversations),
        "shadow_answers": ShadowAnswer.objects.filter(live_message_id__in=messages),
    }


# --- export --------------------------------------------------------------------------------------------


def visitor_export(*, visitor_id: str) -> dict[str, Any]:
    """All the visitor's data as JSON-ready lists of rows, one list per kind (see `_owned`).

    Rows are read from the models' concrete fields, so a field added later is exported without a change
    here; left out are what is not the visitor's to read or not readable at all: embeddings, binary
    values, encrypted originals (`*_original`: the stored, masked text is exported), staff users."""
    data: dict[str, Any] = {"format": EXPORT_FORMAT, "visitor_id": visitor_id, "exported_at": timezone.now()}
    for kind, rows in _owned(footprint_of_visitor(visitor_id)).items():
        only = _REVIEW_ITEM_FIELDS if kind == "review_items" else None
        data[kind] = [_unheld(export_row(row, only=only)) for row in rows]
    data["profile"] = data["profile"][0] if data["profile"] else None
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def _unheld(row: dict[str, Any]) -> dict[str, Any]:
    """An answer held for a trainer is not the visitor's yet: its text and sources stay out of the export."""
    if row.get("status") == Message.Status.HELD and "text" in row:
        return {**row, "text": "", "sources": []}
    return row


def export_row(row: models.Model, *, only: Iterable[str] | None = None) -> dict[str, Any]:
    wanted = set(only) if only is not None else None
    return {f.attname: getattr(row, f.attname) for f in row._meta.concrete_fields
            if _exported(f) and (wanted is None or f.name in wanted)}


def _exported(model_field: models.Field[Any, Any]) -> bool:
    if model_field.name.endswith("_original") or isinstance(model_field, VectorField | models.BinaryField):
        return False
    return not (model_field.is_relation and model_field.related_model is get_user_model())


# --- erasure -------------------------------------------------------------------------------------------


def visitor_erase(*, visitor_id: str, requested_by: str, staff_user: User | None = None) -> ErasureRecord:
    """Erase everything of the visitor and stop its token; returns the record left behind (counts only)."""
    visitor_revoke(visitor_id)
    fp = footprint_of_visitor(visitor_id)
    counts = footprint_erase(fp)
    counts["redis"] = redis_forget(fp.redis_needles(), ticket_owners=fp.visitor_ids)
    record = ErasureRecord.objects.create(visitor_hash=visitor_hash(visitor_id), requested_by=requested_by,
                                          staff_user=staff_user, counts=_nonzero(counts))
    logger.info("erased visitor data (record %s): %s", record.pk, record.counts)
    return record


def footprint_erase(fp: Footprint, *, keep_trainer_work: bool = False) -> Counter[str]:
    """Delete every row the footprint covers, in one transaction; rows deleted per model label.
    `keep_trainer_work` (retention): approved answers and evaluation cases made from the messages stay,
    their link to the message cleared (their question is stored masked); a visitor's erasure deletes them."""
    owned = _owned(fp)
    entries = list(owned["cache_entries"] | _aliases_of(fp.question_hashes))
    counts: Counter[str] = Counter()
    with transaction.atomic(), _audit_paused():
        _audit_entries_forget(owned, entries)  # before the rows go: they name the rows' ids
        kinds = ("answer_facts", "handoff_facts", "conversations", "profile", "cache_votes")
        for kind in kinds if keep_trainer_work else ("evaluation_cases", "approved_answers", *kinds):
            counts.update(owned[kind].delete()[1])
        counts.update(CacheEntry.objects.filter(pk__in=[e.pk for e in entries]).delete()[1])
        counts["monitoring.TopicCluster (scrubbed)"] = _topic_clusters_scrub(fp)
    _cache_keys_forget(entries)
    return counts


def _aliases_of(question_hashes: list[str]) -> QuerySet[CacheEntry]:
    """Shared cache aliases of the visitor's questions: they keep the question's text, not who asked it."""
    return CacheEntry.objects.filter(alias_of__isnull=False, question_hash__in=question_hashes)


def _topic_clusters_scrub(fp: Footprint) -> int:
    """Drift topics keep their messages' ids and example questions: the visitor's leave, the sizes stay."""
    doomed, texts = set(fp.message_ids), set(fp.questions)
    clusters = list(TopicCluster.objects.filter(message_ids__overlap=fp.message_ids)) if fp.message_ids else []
    for cluster in clusters:
        cluster.message_ids = [m for m in cluster.message_ids if m not in doomed]
        cluster.examples = [e for e in cluster.examples if e not in texts]
        cluster.save(update_fields=["message_ids", "examples"])
    return len(clusters)


def _cache_keys_forget(entries: list[CacheEntry]) -> None:
    """The exact-match level's keys of deleted entries (they hold a hash of the question)."""
    keys = [redis_key(Scope(e.space_id, 0, e.prompt_version_id, e.kb_version, e.language, e.visitor_id,
                            e.profile_hash), e.question_hash) for e in entries]
    if keys:
        try:
            _redis(settings.CACHE_REDIS_URL).delete(*keys)
        except redis.RedisError:
            logger.warning("could not delete %d answer-cache keys of erased entries", len(keys), exc_info=True)


# --- Redis ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def _erased_key(visitor_id: str) -> str:
    return f"spotter:erased:{visitor_hash(visitor_id)}"


def visitor_revoke(visitor_id: str) -> None:
    """Its tokens stop working: no token signed before now outlives VISITOR_TOKEN_MAX_AGE_DAYS."""
    ttl = timedelta(days=settings.VISITOR_TOKEN_MAX_AGE_DAYS)
    _redis(settings.REDIS_URL).set(_erased_key(visitor_id), 1, ex=ttl)


def visitor_erased(visitor_id: str) -> bool:
    """Whether the visitor was erased (one Redis EXISTS): call it wherever a visitor token is accepted."""
    try:
        return bool(_redis(settings.REDIS_URL).exists(_erased_key(visitor_id)))
    except redis.RedisError:  # the data is gone either way; a token that still works finds nothing
        logger.warning("could not check the revocation of a visitor token", exc_info=True)
        return False


def redis_forget(needles: set[str], *, ticket_owners: Iterable[str] = ()) -> int:
    """Delete every key with one of `needles` as a part (between `:` and `.`), and the websocket tickets
    of `ticket_owners`, on every Redis the app uses. One SCAN per server: an erasure is rare."""
    owners = {o.encode() for o in ticket_owners}
    wanted = {n.encode() for n in needles}
    deleted = 0
    for url in {settings.REDIS_URL, settings.CACHE_REDIS_URL}:
        client = _redis(url)
        keys = [k for k in client.scan_iter(count=1000) if _names(k, wanted)]
        keys += _tickets_of(client, owners) if owners else []
        deleted += client.delete(*keys) if keys else 0
    return deleted


def _names(key: bytes, wanted: set[bytes]) -> bool:
    return not wanted.isdisjoint(_KEY_PARTS.split(key))


def _tickets_of(client: redis.Redis, owners: set[bytes]) -> list[bytes]:
    keys = list(client.scan_iter(match="spotter:ticket:*", count=1000))
    values = client.mget(keys) if keys else []
    return [k for k, v in zip(keys, values, strict=True) if v in owners]


# --- audit log -----------------------------------------------------------------------------------------


def _audit_paused() -> Any:
    """Deleting a visitor's rows must not write their contents into the audit log's delete entries."""
    if apps.is_installed("auditlog"):
        from auditlog.context import disable_auditlog

        return disable_auditlog()
    return _Nothing()


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _audit_entries_forget(owned: dict[str, QuerySet[Any]], entries: list[CacheEntry]) -> None:
    """Earlier audit entries of the visitor's rows (a trainer's approval records the question) go too."""
    if not apps.is_installed("auditlog"):
        return
    from auditlog.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    with connection.cursor() as cursor:  # the log's append-only trigger lets an erasure's transaction delete
        cursor.execute("SELECT set_config('spotter.audit_erasure', 'on', true)")
    rows: list[tuple[type[models.Model], list[Any]]] = [(CacheEntry, [e.pk for e in entries])]
    rows += [(qs.model, list(qs.values_list("pk", flat=True))) for qs in owned.values()]
    for model, pks in rows:
        if pks:
            LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(model),
                                    object_pk__in=[str(pk) for pk in pks]).delete()


# --- retention -----------------------------------------------------------------------------------------


def retention_run(*, days: int) -> ErasureRecord | None:
    """Delete conversations idle for more than `days` (0: keep), with all that hangs on them, and the
    profiles of visitors left without a conversation that were not touched for as long. Counts recorded."""
    if days <= 0:
        return None
    cutoff = timezone.now() - timedelta(days=days)
    counts: Counter[str] = Counter()
    needles: set[str] = set()
    for fp in _stale_footprints(cutoff):
        counts.update(footprint_erase(fp, keep_trainer_work=True))
        needles |= fp.redis_needles()
    counts["redis"] = redis_forget(needles) if needles else 0
    if not _nonzero(counts):
        return None
    return ErasureRecord.objects.create(requested_by=ErasureRecord.Requester.RETENTION, counts=_nonzero(counts))


def _stale_footprints(cutoff: Any) -> Iterable[Footprint]:
    while ids := list(Conversation.objects.filter(updated_at__lt=cutoff).values_list("pk", flat=True)
                      [:RETENTION_BATCH]):
        yield _footprint(visitor_ids=[], conversation_ids=ids)
    idle = VisitorProfile.objects.filter(updated_at__lt=cutoff).exclude(
        visitor_id__in=Conversation.objects.values("visitor_id"))
    visitors = list(idle.values_list("visitor_id", flat=True))
    if visitors:
        yield _footprint(visitor_ids=visitors, conversation_ids=[])


def _nonzero(counts: Counter[str]) -> dict[str, int]:
    return {kind: n for kind, n in sorted(counts.items()) if n}
