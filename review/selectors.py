from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from knowledge.embeddings import QueryVector


@dataclass(frozen=True)
class ApprovedCandidate:
    answer_id: int
    question: str
    answer: str
    sources: list[dict[str, Any]]
    similarity: float


def approved_candidates_query(
    *, vector: QueryVector, language: str, prompt_name: str = "", k: int = 5
) -> tuple[str, list[Any]]:
    """The servable approved answers whose questions are nearest, nearest first: one statement, an
    exact scan (trainers approve hundreds or thousands, not millions). The statement and its
    parameters, to run with the answer cache's lookup in one round trip (chat.reuse); its rows
    become candidates through `approved_candidates_from`."""
    literal = vector.literal()
    sql = (
        "SELECT id, question, answer, sources::text, 1 - (embedding <=> %s::vector) AS similarity "
        "FROM review_approvedanswer "
        "WHERE is_active AND language = %s AND scope IN ('', %s) AND space_id = %s "
        "AND (expires_at IS NULL OR expires_at > %s) AND vector_dims(embedding) = %s "
        "ORDER BY embedding <=> %s::vector LIMIT %s"
    )
    return sql, [literal, language, prompt_name, vector.space_id, timezone.now(), vector.dimensions, literal, k]


def approved_candidates_from(rows: list[tuple[Any, ...]]) -> list[ApprovedCandidate]:
    return [
        ApprovedCandidate(answer_id, question, answer, json.loads(sources), float(similarity))
        for answer_id, question, answer, sources, similarity in rows
    ]
