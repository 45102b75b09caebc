from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from knowledge.embeddings import QueryVector

from .models import ApprovedAnswer


@dataclass(frozen=True)
class ApprovedCandidate:
    answer: ApprovedAnswer
    similarity: float


def approved_servable(*, language: str, prompt_name: str = ""):
    return ApprovedAnswer.objects.filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()),
        Q(scope="") | Q(scope=prompt_name),
        is_active=True, language=language,
    )


def approved_candidates(
    *, vector: QueryVector, language: str, prompt_name: str = "", k: int = 5
) -> list[ApprovedCandidate]:
    """The approved answers whose questions are nearest, nearest first (an exact scan: trainers
    approve hundreds or thousands, not millions)."""
    servable = approved_servable(language=language, prompt_name=prompt_name).filter(space_id=vector.space_id)
    ids = list(servable.values_list("pk", flat=True))
    if not ids:
        return []
    literal = "[" + ",".join(f"{x:.7g}" for x in vector.vector) + "]"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, 1 - (embedding <=> %s::vector) FROM review_approvedanswer "
            "WHERE id = ANY(%s) AND vector_dims(embedding) = %s ORDER BY 2 DESC LIMIT %s",
            [literal, ids, vector.dimensions, k],
        )
        rows = cursor.fetchall()
    answers = ApprovedAnswer.objects.in_bulk([r[0] for r in rows])
    return [ApprovedCandidate(answers[pk], float(sim)) for pk, sim in rows]
