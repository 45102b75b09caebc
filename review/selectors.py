from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from knowledge.embeddings import QueryVector

from .models import ApprovedAnswer


@dataclass(frozen=True)
class ApprovedCandidate:
    answer: ApprovedAnswer
    similarity: float


def approved_candidates(
    *, vector: QueryVector, language: str, prompt_name: str = "", k: int = 5
) -> list[ApprovedCandidate]:
    """The servable approved answers whose questions are nearest, nearest first: one statement, an
    exact scan (trainers approve hundreds or thousands, not millions)."""
    literal = vector.literal()
    columns = ", ".join(f.column for f in ApprovedAnswer._meta.concrete_fields if f.name != "embedding")
    sql = (
        f"SELECT {columns}, 1 - (embedding <=> %s::vector) AS similarity FROM review_approvedanswer "
        "WHERE is_active AND language = %s AND scope IN ('', %s) AND space_id = %s "
        "AND (expires_at IS NULL OR expires_at > %s) AND vector_dims(embedding) = %s "
        "ORDER BY embedding <=> %s::vector LIMIT %s"
    )
    params = [literal, language, prompt_name, vector.space_id, timezone.now(), vector.dimensions, literal, k]
    return [ApprovedCandidate(a, float(a.similarity)) for a in ApprovedAnswer.objects.raw(sql, params)]
