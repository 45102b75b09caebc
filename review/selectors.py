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

from .models import ReviewItem


@dataclass(frozen=True)
class ApprovedCandidate:
    answer_id: int
    question: str
    answer: str
    sources: list[dict[str, Any]]
    similarity: float


def approved_candidates(
    *, vector: QueryVector, language: str, prompt_name: str = "", k: int = 5
) -> list[ApprovedCandidate]:
    """The servable approved answers whose questions are nearest, nearest first.

    An exact scan, no index: trainers approve hundreds or thousands of answers, not millions.
    Only rows embedded in the query's space and size compare: the others wait to be re-embedded."""
    literal = vector.literal()
    sql = (
        "SELECT id, question, answer, sources::text, 1 - (embedding <=> %s::vector) AS similarity "
        "FROM review_approvedanswer "
        "WHERE is_active AND language = %s AND scope IN ('', %s) AND space_id = %s "
        "AND (expires_at IS NULL OR expires_at > %s) AND vector_dims(embedding) = %s "
        "ORDER BY embedding <=> %s::vector LIMIT %s"
    )
    params: list[Any] = [literal, language, prompt_name, vector.space_id, timezone.now(), vector.dimensions, literal, k]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        ApprovedCandidate(answer_id, question, answer, json.loads(sources), float(similarity))
        for answer_id, question, answer, sources, similarity in rows
    ]


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
