"""What drift checks read: answer facts of a time range, review decisions (review's table, read by name:
monitoring imports no other app), and the drift report staff work from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import numpy as np
from django.apps import apps
from django.conf import settings
from django.db.models import Count, Q

from .models import AnswerFact
from .models_drift import DriftCheck, TopicCluster


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length one, so dot products are cosine similarities."""
    array = np.asarray(vectors, dtype=np.float32)
    return array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class Questions:
    """Questions of a time range: unit-length embeddings, one row per question, and what belongs to each."""

    vectors: np.ndarray
    message_ids: list[UUID]
    texts: list[str]
    flagged: np.ndarray  # bool: answered with low confidence, a weak knowledge-base match, or not at all
    confidence: list[float | None]
    asked_at: list[datetime]

    def __len__(self) -> int:
        return len(self.message_ids)

    def subset(self, rows: np.ndarray) -> Questions:
        return Questions(vectors=self.vectors[rows], message_ids=[self.message_ids[i] for i in rows],
                         texts=[self.texts[i] for i in rows], flagged=self.flagged[rows],
                         confidence=[self.confidence[i] for i in rows], asked_at=[self.asked_at[i] for i in rows])


def _facts(start: datetime, end: datetime) -> Any:
    return AnswerFact.objects.filter(created_at__gte=start, created_at__lt=end)


def questions_between(*, start: datetime, end: datetime, limit: int, dimensions: int | None = None) -> Questions:
    """At most `limit` embedded questions answered in [start, end), a sample when there are more;
    only vectors of `dimensions` (default: those of the newest question), so a change of embedding model
    never mixes spaces."""
    facts = _facts(start, end).filter(question_embedding__isnull=False)
    if dimensions is None:
        newest = facts.order_by("-created_at").values_list("question_embedding", flat=True).first()
        dimensions = len(newest) if newest is not None else 0
    columns = ["message_id", "question", "question_embedding", "confidence", "best_match", "status", "created_at"]
    # Answer ids are random (uuid4): in their order, the first rows are a random sample that the same answers
    # always give alike, so a check run again judges the same questions.
    rows = list(facts.order_by("message_id").values_list(*columns)[: limit * 2])
    rows = [row for row in rows if len(row[2]) == dimensions][:limit]
    if not rows:
        return Questions(np.zeros((0, max(dimensions, 1)), np.float32), [], [], np.zeros(0, bool), [], [])
    return Questions(
        vectors=unit_rows(np.array([row[2] for row in rows], dtype=np.float32)),
        message_ids=[row[0] for row in rows], texts=[row[1] for row in rows],
        flagged=np.array([_flagged(confidence=row[3], best_match=row[4], status=row[5]) for row in rows]),
        confidence=[row[3] for row in rows], asked_at=[row[6] for row in rows],
    )


def _flagged(*, confidence: float | None, best_match: float | None, status: str) -> bool:
    low = confidence is not None and confidence < settings.MONITORING_LOW_CONFIDENCE_BELOW
    weak = best_match is not None and best_match < settings.DRIFT_WEAK_MATCH_BELOW
    return low or weak or status == "failed"


def weak_match_counts(*, start: datetime, end: datetime) -> tuple[int, int]:
    """(answers whose best knowledge-base match is weak, answers that searched the knowledge base)."""
    counts = _facts(start, end).filter(best_match__isnull=False).aggregate(
        weak=Count("pk", filter=Q(best_match__lt=settings.DRIFT_WEAK_MATCH_BELOW)), total=Count("pk"))
    return counts["weak"], counts["total"]


def thumbs_down_counts(*, start: datetime, end: datetime) -> tuple[int, int]:
    """(thumbs down, answers with a thumb either way)."""
    counts = _facts(start, end).filter(feedback__in=["up", "down"]).aggregate(
        down=Count("pk", filter=Q(feedback="down")), total=Count("pk"))
    return counts["down"], counts["total"]


def rejection_counts(*, start: datetime, end: datetime) -> tuple[int, int]:
    """(review items rejected, review items decided) in [start, end): an approval rate that drops is a
    rejection rate that rises."""
    decided = apps.get_model("review", "ReviewItem").objects.filter(
        decided_at__gte=start, decided_at__lt=end, status__in=["approved", "edited", "rejected"])
    counts = decided.aggregate(rejected=Count("pk", filter=Q(status="rejected")), total=Count("pk"))
    return counts["rejected"], counts["total"]


def confidences_between(*, start: datetime, end: datetime, limit: int) -> np.ndarray:
    values = _facts(start, end).filter(confidence__isnull=False).order_by("message_id").values_list(
        "confidence", flat=True)
    return np.array(list(values[:limit]), dtype=float)


def previous_evidence(*, kind: str, before: datetime) -> float:
    """The CUSUM a check of `kind` carries on from: that of the latest earlier window, zero at first."""
    latest = DriftCheck.objects.filter(kind=kind, window_start__lt=before).order_by("-window_start").first()
    return latest.evidence if latest else 0.0


def drift_report(*, history: int = 48) -> dict[str, Any]:
    """Per kind, its latest check and the `history` before it (oldest first), and the topic clusters a
    person has not dismissed, newest first."""
    kinds = []
    for kind, label in DriftCheck.Kind.choices:
        checks = list(DriftCheck.objects.filter(kind=kind).order_by("-window_start")[:history])[::-1]
        kinds.append({"kind": kind, "label": label, "latest": checks[-1] if checks else None, "history": checks})
    clusters = TopicCluster.objects.exclude(status=TopicCluster.Status.DISMISSED).order_by("-last_seen", "-size")
    return {"kinds": kinds, "clusters": list(clusters[:50])}
