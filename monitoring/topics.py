"""New-topic clusters: recent questions that are novel against the reference or were answered poorly,
grouped by meaning (HDBSCAN), matched across checks by centroid so each shows its trend, and the one-click
decisions staff take on them."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import numpy as np
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from sklearn.cluster import HDBSCAN

from .models import AnswerFact
from .models_drift import TopicCluster
from .selectors_drift import Questions
from .signals import topic_sent_to_review

Status = TopicCluster.Status
EXAMPLES = 5
TREND_POINTS = 48
MAX_MEMBERS = 1000
# Which decision may follow which: a dismissed cluster stays dismissed (it is matched and updated, never
# shown again), and a cluster is sent to the review queue at most once.
MOVES = {
    Status.SENT_TO_REVIEW: (Status.EMERGING, Status.KB_GAP),
    Status.KB_GAP: (Status.EMERGING, Status.SENT_TO_REVIEW),
    Status.DISMISSED: (Status.EMERGING, Status.SENT_TO_REVIEW, Status.KB_GAP),
}


def topic_groups(
    *, vectors: np.ndarray, candidates: np.ndarray, windows: np.ndarray, threshold: float, min_size: int
) -> list[np.ndarray]:
    """Row indices of each cluster of candidates (unit rows), largest first. Only a candidate with another
    candidate of its own window (`windows`: one number per row) within `threshold` is clustered: scattered
    outliers of known topics are what makes clusters impure, and over a long horizon even they find a
    neighbour, while a topic is several people asking alike at the same time."""
    grouped = _grouped_in_window(vectors, candidates, windows, threshold)
    if len(grouped) < min_size:
        return []
    labels = HDBSCAN(min_cluster_size=min_size, copy=True).fit_predict(vectors[grouped])
    groups = [grouped[labels == label] for label in set(labels.tolist()) - {-1}]
    if not groups and _cohesive(vectors[grouped], threshold):
        groups = [grouped]  # HDBSCAN never returns its root: all of them alike is one topic
    return sorted(groups, key=len, reverse=True)


def _grouped_in_window(
    vectors: np.ndarray, candidates: np.ndarray, windows: np.ndarray, threshold: float
) -> np.ndarray:
    grouped = []
    for window in np.unique(windows[candidates]):
        rows = np.flatnonzero(candidates & (windows == window))
        if len(rows) > 1:
            sims = vectors[rows] @ vectors[rows].T
            np.fill_diagonal(sims, -np.inf)
            grouped.append(rows[sims.max(axis=1) >= threshold])
    return np.sort(np.concatenate(grouped)) if grouped else np.zeros(0, dtype=int)


def _cohesive(vectors: np.ndarray, threshold: float) -> bool:
    """Its questions are, on average, as close to their centre as a novel question is to its neighbour."""
    return float((vectors @ _centre(vectors)).mean()) >= threshold


def topics_update(
    *, questions: Questions, novel: np.ndarray, windows: np.ndarray, threshold: float, window_end: datetime
) -> list[TopicCluster]:
    """Cluster the recent questions that are novel or answered poorly (`windows`: the window each was asked
    in); each cluster updates the known one whose centre is within DRIFT_TOPIC_MATCH_SIMILARITY of its own,
    or starts an emerging one."""
    groups = topic_groups(vectors=questions.vectors, candidates=novel | questions.flagged, windows=windows,
                          threshold=threshold, min_size=settings.DRIFT_TOPIC_MIN_SIZE)
    known = list(TopicCluster.objects.filter(
        last_seen__gte=window_end - timedelta(hours=settings.DRIFT_REFERENCE_HOURS)))
    clusters = []
    for rows in groups:
        centroid = _centre(questions.vectors[rows])
        match = _nearest_cluster(known, centroid)
        if match is not None:
            known.remove(match)  # two groups of one check never merge into the same cluster
        clusters.append(_cluster_save(match, questions, rows, centroid, window_end))
    return clusters


def _centre(vectors: np.ndarray) -> np.ndarray:
    mean = vectors.mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def _nearest_cluster(known: list[TopicCluster], centroid: np.ndarray) -> TopicCluster | None:
    if not known:
        return None
    similarities = [float(np.dot(np.asarray(cluster.centroid), centroid)) for cluster in known]
    best = int(np.argmax(similarities))
    return known[best] if similarities[best] >= settings.DRIFT_TOPIC_MATCH_SIMILARITY else None


def _cluster_save(
    cluster: TopicCluster | None, questions: Questions, rows: np.ndarray, centroid: np.ndarray, window_end: datetime
) -> TopicCluster:
    nearest = rows[np.argsort(-(questions.vectors[rows] @ centroid))]
    examples = list(dict.fromkeys(questions.texts[i] for i in nearest if questions.texts[i]))[:EXAMPLES]
    members = [questions.message_ids[i] for i in rows]
    point = {"window_end": window_end.isoformat(), "size": len(rows)}
    if cluster is None:
        return TopicCluster.objects.create(
            first_seen=window_end, last_seen=window_end, size=len(rows), trend=[point], examples=examples,
            message_ids=members, centroid=centroid.tolist())
    cluster.message_ids = list(dict.fromkeys([*members, *cluster.message_ids]))[:MAX_MEMBERS]
    cluster.trend = [*[p for p in cluster.trend if p["window_end"] != point["window_end"]], point][-TREND_POINTS:]
    cluster.size, cluster.examples, cluster.last_seen = len(rows), examples, window_end
    cluster.centroid = centroid.tolist()
    cluster.save(update_fields=["message_ids", "trend", "size", "examples", "centroid", "last_seen"])
    return cluster


# --- staff decisions --------------------------------------------------------------------------------


def _move(cluster: TopicCluster, status: str, user: User) -> bool:
    """The guarded status change: False when the cluster is no longer in a state that allows it."""
    changed = TopicCluster.objects.filter(pk=cluster.pk, status__in=MOVES[Status(status)]).update(
        status=status, status_changed_by=user, status_changed_at=timezone.now())
    return bool(changed)


def topic_cluster_send_to_review(*, cluster: TopicCluster, user: User) -> int | None:
    """Queue the cluster's answers for trainers (review listens to `topic_sent_to_review`); how many were
    queued, or None when the cluster was already sent or dismissed."""
    with transaction.atomic():
        if not _move(cluster, Status.SENT_TO_REVIEW, user):
            return None
        facts = AnswerFact.objects.filter(message_id__in=cluster.message_ids)
        confidence: dict[UUID, float | None] = {
            message_id: value for message_id, value in facts.values_list("message_id", "confidence")}
        answers = [(message_id, confidence.get(message_id)) for message_id in cluster.message_ids]
        responses = topic_sent_to_review.send(sender=TopicCluster, cluster_id=cluster.pk, answers=answers)
    counts: list[object] = [response for _, response in responses]
    return sum(count for count in counts if isinstance(count, int))


def topic_cluster_mark_gap(*, cluster: TopicCluster, user: User) -> bool:
    """Staff judged the topic one the knowledge base should cover."""
    return _move(cluster, Status.KB_GAP, user)


def topic_cluster_dismiss(*, cluster: TopicCluster, user: User) -> bool:
    return _move(cluster, Status.DISMISSED, user)
