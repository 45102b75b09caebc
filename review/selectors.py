from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from knowledge.embeddings import QueryVector
from knowledge.models import Chunk

from .models import ReviewDecision, ReviewItem


@dataclass(frozen=True)
class ApprovedCandidate:
    answer_id: int
    question: str
    answer: str
    sources: list[dict[str, Any]]
    similarity: float


def approved_candidates(
    *, vector: QueryVector, language: str, prompt_name: str = "", k: int = 5,
    exclude_prompt_version_ids: list[int] | None = None,
) -> list[ApprovedCandidate]:
    """The servable approved answers whose questions are nearest, nearest first; none approved from an
    answer given under `exclude_prompt_version_ids` (another experiment arm's prompt).

    An exact scan, no index: trainers approve hundreds or thousands of answers, not millions.
    Only rows embedded in the query's space and size compare: the others wait to be re-embedded."""
    literal = vector.literal()
    foreign = (
        "AND NOT EXISTS (SELECT 1 FROM chat_message m WHERE m.id = source_message_id "
        "AND m.prompt_version_id = ANY(%s)) " if exclude_prompt_version_ids else ""
    )
    sql = (
        "SELECT id, question, answer, sources::text, 1 - (embedding <=> %s::vector) AS similarity "
        "FROM review_approvedanswer "
        "WHERE is_active AND language = %s AND scope IN ('', %s) AND space_id = %s "
        f"AND (expires_at IS NULL OR expires_at > %s) AND vector_dims(embedding) = %s {foreign}"
        "ORDER BY embedding <=> %s::vector LIMIT %s"
    )
    params: list[Any] = [literal, language, prompt_name, vector.space_id, timezone.now(), vector.dimensions]
    params += [exclude_prompt_version_ids] if exclude_prompt_version_ids else []
    params += [literal, k]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        ApprovedCandidate(answer_id, question, answer, json.loads(sources), float(similarity))
        for answer_id, question, answer, sources, similarity in rows
    ]


def nearest_unreviewed(*, vector: QueryVector) -> float:
    """How close the nearest question still awaiting review is (cosine; 0 with none): where unreviewed
    questions lie closer than an approved one, the approval does not reach. An exact scan of the open
    items, run only when an approved answer is about to be served."""
    sql = (
        "SELECT 1 - (question_embedding <=> %s::vector) FROM review_reviewitem "
        "WHERE status IN ('pending', 'claimed', 'grouped', 'skipped') AND space_id = %s "
        "AND vector_dims(question_embedding) = %s ORDER BY question_embedding <=> %s::vector LIMIT 1"
    )
    literal = vector.literal()
    with connection.cursor() as cursor:
        cursor.execute(sql, [literal, vector.space_id, vector.dimensions, literal])
        row = cursor.fetchone()
    return float(row[0]) if row else 0.0


def review_queue(*, user: User | None = None) -> QuerySet[ReviewItem]:
    """What a trainer can take, highest learning value first: pending items, items whose claim lapsed,
    and those `user` holds."""
    status = ReviewItem.Status
    lapsed = Q(status=status.CLAIMED, claimed_at__lt=claim_cutoff(timezone.now()))
    held = Q(status=status.CLAIMED, claimed_by=user) if user is not None else Q(pk__in=[])
    return ReviewItem.objects.filter(Q(status=status.PENDING) | lapsed | held).order_by("-learning_value", "created_at")


def claim_expires_at(*, item: ReviewItem) -> datetime | None:
    """When the item's claim lapses; None when nobody holds it."""
    if item.status != ReviewItem.Status.CLAIMED or item.claimed_at is None:
        return None
    return item.claimed_at + timedelta(minutes=settings.REVIEW_CLAIM_MINUTES)


def claim_cutoff(now: datetime) -> datetime:
    """A claim made before this has lapsed (REVIEW_CLAIM_MINUTES)."""
    return now - timedelta(minutes=settings.REVIEW_CLAIM_MINUTES)


# --- what a trainer reads in admin ----------------------------------------------------------------


def review_list(*, user: User | None, open_only: bool) -> QuerySet[ReviewItem]:
    """The queue list's rows with what each row shows (question, answer, claim holder) in one query."""
    items = review_queue(user=user) if open_only else ReviewItem.objects.order_by("-learning_value", "created_at")
    return items.select_related("message__reply_to", "message__conversation", "claimed_by")


def review_item_detail(*, pk: int) -> ReviewItem | None:
    return (
        ReviewItem.objects.select_related("message__reply_to", "message__conversation", "message__feedback",
                                          "claimed_by", "decided_by")
        .filter(pk=pk).first()
    )


def review_item_context(*, item: ReviewItem, before: int = 4, after: int = 2) -> list[Any]:
    """The messages around the reviewed answer, in conversation order (the answer itself included)."""
    sequence = item.message.sequence
    return list(
        item.message.conversation.messages.filter(sequence__gte=sequence - before, sequence__lte=sequence + after)
        .order_by("sequence")
    )


def represented_questions(*, item: ReviewItem) -> list[tuple[int, str]]:
    """The questions grouped under the item (id, text), oldest first: its decision covers them."""
    rows = item.represented.filter(status=ReviewItem.Status.GROUPED).order_by("created_at", "pk")
    return [(pk, text or "") for pk, text in rows.values_list("pk", "message__reply_to__text")]


def review_item_history(*, item: ReviewItem) -> QuerySet[ReviewDecision]:
    return item.decisions.select_related("user").order_by("at", "pk")


def chunk_excerpts(*, chunk_ids: list[int]) -> dict[int, str]:
    """The excerpt text the model was given, by chunk id; a chunk re-ingested since is missing."""
    return dict(Chunk.objects.filter(pk__in=chunk_ids).values_list("pk", "text"))


def queue_neighbours(*, item: ReviewItem, user: User | None) -> tuple[int | None, int | None]:
    """The open-queue items just before and just after `item` in queue order (its own place is kept
    even when it has left the queue, so "next" after a decision is the one that followed it)."""
    value, created = item.learning_value, item.created_at
    queue = review_queue(user=user).exclude(pk=item.pk)
    after = Q(learning_value__lt=value) | Q(learning_value=value, created_at__gt=created)
    before = Q(learning_value__gt=value) | Q(learning_value=value, created_at__lt=created)
    following = queue.filter(after).values_list("pk", flat=True).first()
    preceding = queue.filter(before).order_by("learning_value", "-created_at").values_list("pk", flat=True).first()
    return preceding, following
