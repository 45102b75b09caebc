"""Which review item teaches most (active learning).

An item's learning value adds up, with the weights of REVIEW_WEIGHTS:
- uncertainty: `uncertainty` × (1 - confidence);
- signals: the weight of each reason it is queued for (thumbs-down, handoff, no knowledge-base match,
  a repeated question, a near-miss of an approved answer);
- density: `density` × log2(1 + n), n being the unresolved questions of the last REVIEW_DENSITY_DAYS within
  REVIEW_DENSITY_SIMILARITY of it that neither an approved answer nor a higher-ranked item covers yet
  (diversity: one approval should cover a cluster, not ten trainers approve ten paraphrases);
- skips: minus `skip` for each trainer who skipped it.

Questions within REVIEW_GROUP_SIMILARITY of an open item (as close as an approved answer must be to be
served) are grouped under it: they leave the queue and its decision covers them.

The density ranking is the greedy algorithm for maximum coverage: items are taken in order of value, and
each taken item's neighbourhood no longer counts for the others. Values only fall as coverage grows, so
the greedy order is computed lazily with a heap.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from sklearn.preprocessing import normalize  # rows to length 1, zero rows left zero

from knowledge.embeddings import NoActiveSpace, SpaceRef, active_space_ref, embed_texts

from .models import ApprovedAnswer, ReviewItem

Status, Reason = ReviewItem.Status, ReviewItem.Reason
OPEN = (Status.PENDING, Status.CLAIMED, Status.GROUPED)
# Below the similarity at which an approved answer is served, by at most this much: the visitor's
# question nearly matched what a trainer approved, and deciding says whether it is the same question.
NEAR_MISS_BAND = 0.07
_BLOCK = 1024  # rows of the similarity matrix computed at a time


def value_terms(*, priority: float, reasons: Sequence[str], skip_count: int, density: float) -> dict[str, float]:
    """The learning value term by term, as the item page shows it; `total` is their sum."""
    weights = settings.REVIEW_WEIGHTS
    terms = {
        "uncertainty": weights["uncertainty"] * priority,
        "signals": sum(weights[reason] for reason in set(reasons)),
        "density": weights["density"] * math.log2(1 + density),
        "skips": -weights["skip"] * skip_count,
    }
    rounded = {name: round(value, 4) for name, value in terms.items()}
    return {**rounded, "total": round(sum(terms.values()), 6)}


@dataclass
class _Item:
    index: int  # its place in the list the recompute works on
    pk: int
    status: str
    question: str
    conversation_id: Any
    recent: bool
    priority: float
    reasons: list[str]
    skip_count: int
    vector: np.ndarray | None = None
    neighbours: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))  # density radius
    near_duplicates: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))  # group radius
    approved_similarity: float = 0.0
    members: list[int] = field(default_factory=list)
    not_grouped_with: frozenset[int] = frozenset()  # item pks a trainer separated it from
    derived: list[str] = field(default_factory=list)  # reasons the recompute found (not a visitor's signal)
    density: float = 0.0


def learning_values_recompute() -> int:
    """Embed, group and rank every open item; returns how many items it updated."""
    try:
        ref = active_space_ref()
    except NoActiveSpace:
        return 0  # nothing ingested, nothing approved: no space to compare questions in
    items = _open_items(ref)
    if not items:
        return 0
    _embed_missing(items, ref)
    _neighbourhoods(items, _approved_vectors(ref))
    leaders = _group(items)
    _add_signals(items, leaders)
    _rank(items, leaders)
    return _save(items, leaders)


# --- reading and embedding ------------------------------------------------------------------------------


def _open_items(ref: SpaceRef) -> list[_Item]:
    since = timezone.now() - timedelta(days=settings.REVIEW_DENSITY_DAYS)
    rows = (
        ReviewItem.objects.filter(status__in=OPEN)
        .order_by("created_at", "pk")
        .values_list("pk", "status", "message__reply_to__text", "message__conversation_id", "created_at",
                     "priority", "reasons", "skip_count", "question_embedding", "space_id", "not_grouped_with")
    )
    items = []
    for index, (pk, status, question, conversation, created, priority, reasons, skips, vector, space,
                separated) in enumerate(rows):
        # A vector of another space (an earlier embedding model) is not comparable: embedded again.
        comparable = vector is not None and space == ref.space_id
        items.append(_Item(
            index, pk, status, (question or "").strip(), conversation, created >= since, priority, list(reasons),
            skips, np.asarray(vector, dtype=np.float32) if comparable else None, not_grouped_with=frozenset(separated),
        ))
    return items


def _embed_missing(items: list[_Item], ref: SpaceRef) -> None:
    missing = [item for item in items if item.vector is None and item.question]
    if not missing:
        return
    vectors = embed_texts([item.question for item in missing], ref.spec)
    for item, vector in zip(missing, vectors, strict=True):
        item.vector = np.asarray(vector, dtype=np.float32)
    ReviewItem.objects.bulk_update(
        [ReviewItem(pk=item.pk, question_embedding=item.vector, space_id=ref.space_id) for item in missing],
        ["question_embedding", "space_id"], batch_size=500,
    )


def _approved_vectors(ref: SpaceRef) -> np.ndarray:
    rows = ApprovedAnswer.objects.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()),
                                         is_active=True, space_id=ref.space_id, embedding__isnull=False)
    vectors = [np.asarray(v, dtype=np.float32) for v in rows.values_list("embedding", flat=True)]
    return normalize(np.vstack(vectors)) if vectors else np.empty((0, ref.spec.dimensions), dtype=np.float32)


# --- neighbourhoods and groups --------------------------------------------------------------------------


def _neighbourhoods(items: list[_Item], approved: np.ndarray) -> None:
    """Each item's unresolved neighbours (recent ones, within the density radius), its near-duplicates
    (within the group radius) and how close the nearest approved question is."""
    placed = [n for n, item in enumerate(items) if item.vector is not None]
    if not placed:
        return
    matrix = normalize(np.vstack([_vector(items[n]) for n in placed]))
    recent = np.array([items[n].recent for n in placed])
    index = np.array(placed)
    density_radius, group_radius = settings.REVIEW_DENSITY_SIMILARITY, settings.REVIEW_GROUP_SIMILARITY
    for start in range(0, len(placed), _BLOCK):
        block = matrix[start:start + _BLOCK]
        similar = block @ matrix.T
        nearest_approved = (block @ approved.T).max(axis=1) if len(approved) else np.zeros(len(block))
        for row in range(len(block)):
            item = items[placed[start + row]]
            scores = similar[row]
            item.neighbours = index[(scores >= density_radius) & recent]
            item.near_duplicates = index[scores >= group_radius]
            item.approved_similarity = float(nearest_approved[row])


def _vector(item: _Item) -> np.ndarray:
    assert item.vector is not None
    return item.vector


def _group(items: list[_Item]) -> list[int]:
    """Leaders, each with its near-duplicates as members. A claimed item always leads (a trainer is on
    it); then, among the rest, the one with the most near-duplicates takes those not yet grouped, so one
    decision covers the most. Never a pair a trainer separated."""
    assigned: set[int] = set()
    leaders: list[int] = []
    claimed = [n for n, item in enumerate(items) if item.status == Status.CLAIMED]
    others = sorted((n for n, item in enumerate(items) if item.status != Status.CLAIMED),
                    key=lambda n: (-len(items[n].near_duplicates), -_base(items[n]), n))
    for n in [*claimed, *others]:
        if n in assigned:
            continue
        assigned.add(n)
        leaders.append(n)
        members = [m for m in items[n].near_duplicates.tolist() if m not in assigned and _groupable(items[m], items[n])]
        assigned.update(members)
        items[n].members = members
    return leaders


def _groupable(member: _Item, leader: _Item) -> bool:
    separated = leader.pk in member.not_grouped_with or member.pk in leader.not_grouped_with
    # A held answer stays in sight: its visitor is waiting for this very item.
    return member.status != Status.CLAIMED and Reason.HELD not in member.reasons and not separated


def _add_signals(items: list[_Item], leaders: list[int]) -> None:
    """The signals only the whole queue shows: the same question asked again in another conversation,
    and a question just short of an approved answer's."""
    served_at = settings.APPROVED_MIN_SIMILARITY
    for item in items:
        if served_at - NEAR_MISS_BAND <= item.approved_similarity < served_at:
            _add_reason(item, Reason.CACHE_NEAR_MISS)
    for n in leaders:
        leader = items[n]
        if any(items[m].conversation_id != leader.conversation_id for m in leader.members):
            _add_reason(leader, Reason.REPEATED_QUESTION)


def _add_reason(item: _Item, reason: str) -> None:
    if reason not in item.reasons:
        item.reasons.append(reason)
        item.derived.append(reason)


# --- ranking ---------------------------------------------------------------------------------------------


def _base(item: _Item) -> float:
    return value_terms(priority=item.priority, reasons=item.reasons, skip_count=item.skip_count, density=0)["total"]


def _rank(items: list[_Item], leaders: list[int]) -> None:
    """Lazy greedy maximum coverage: a leader's density counts only the neighbours nothing ranked above it
    covers. An approved answer covers its neighbourhood as a leader does (the density radius, not the
    closer one at which it is served): its topic is being taught already."""
    covered = np.array([item.approved_similarity >= settings.REVIEW_DENSITY_SIMILARITY for item in items])
    reach = {n: np.union1d(items[n].neighbours, np.asarray(items[n].members, dtype=np.int64)) for n in leaders}
    heap = [(-_value(items[n], reach[n], covered), n) for n in leaders]
    heapq.heapify(heap)
    while heap:
        _, n = heapq.heappop(heap)
        value = _value(items[n], reach[n], covered)
        if heap and value < -heap[0][0] - 1e-9:
            heapq.heappush(heap, (-value, n))  # its neighbourhood was covered since: ranked again
            continue
        covered[reach[n]] = True


def _value(item: _Item, reach: np.ndarray, covered: np.ndarray) -> float:
    # An item is its own neighbour (similarity 1): it is not its density.
    item.density = float(np.count_nonzero(~covered[reach] & (reach != item.index)))
    terms = value_terms(priority=item.priority, reasons=item.reasons, skip_count=item.skip_count, density=item.density)
    return terms["total"]


# --- writing ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fresh:
    """An item as it is when the results are written: trainers and signals may have moved it since."""

    status: str
    reasons: list[str]
    priority: float
    skip_count: int
    not_grouped_with: frozenset[int]


def _save(items: list[_Item], leaders: list[int]) -> int:
    """Writes what was computed to the items still open, read again under lock: a decision, a claim, a
    new signal or a trainer's "not the same" made during the recompute stands."""
    leader_of = {m: n for n in leaders for m in items[n].members}
    with transaction.atomic():
        rows = (
            ReviewItem.objects.select_for_update().filter(pk__in=[item.pk for item in items], status__in=OPEN)
            .order_by("pk")  # one lock order with the trainers' actions
            .values_list("pk", "status", "reasons", "priority", "skip_count", "not_grouped_with")
        )
        fresh = {pk: _Fresh(status, list(reasons), priority, skips, frozenset(separated))
                 for pk, status, reasons, priority, skips, separated in rows}
        grouped = {m: n for m, n in leader_of.items() if _still_groupable(items[m], items[n], fresh)}
        represents = Counter(grouped.values())
        updates = [
            _row(item, fresh[item.pk], items[grouped[n]] if n in grouped else None, represents[n])
            for n, item in enumerate(items) if item.pk in fresh
        ]
        ReviewItem.objects.bulk_update(
            updates, ["status", "representative", "represents", "density", "learning_value", "value_terms",
                      "reasons", "reason"], batch_size=500,
        )
    return len(updates)


def _still_groupable(member: _Item, leader: _Item, fresh: dict[int, _Fresh]) -> bool:
    if member.pk not in fresh or leader.pk not in fresh:
        return False  # one of them was decided meanwhile
    now, lead = fresh[member.pk], fresh[leader.pk]
    return (now.status in (Status.PENDING, Status.GROUPED) and leader.pk not in now.not_grouped_with
            and member.pk not in lead.not_grouped_with and Reason.HELD not in now.reasons)


def _row(item: _Item, now: _Fresh, leader: _Item | None, members: int) -> ReviewItem:
    reasons = [*now.reasons, *(reason for reason in item.derived if reason not in now.reasons)]
    if leader is not None:
        return ReviewItem(
            pk=item.pk, status=Status.GROUPED, representative_id=leader.pk, represents=1, density=0.0,
            learning_value=0.0, value_terms={"grouped_under": leader.pk}, reasons=reasons,
            reason=_latest_label(reasons),
        )
    terms = value_terms(priority=now.priority, reasons=reasons, skip_count=now.skip_count, density=item.density)
    return ReviewItem(
        pk=item.pk, status=Status.PENDING if now.status == Status.GROUPED else now.status, representative_id=None,
        represents=1 + members, density=item.density, learning_value=terms["total"], value_terms=terms,
        reasons=reasons, reason=_latest_label(reasons),
    )


def _latest_label(reasons: list[str]) -> str:
    return str(Reason(reasons[-1]).label) if reasons else ""
