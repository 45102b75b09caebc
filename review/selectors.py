from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.utils import timezone

from knowledge.embeddings import QueryVector


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
