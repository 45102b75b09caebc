"""Drift detection: each window of answers (default one hour) against a reference window, per kind.

Every kind turns its window into a z-score against the reference and adds it to a one-sided CUSUM
(`cusum_step`): a shift too small to see in one window still adds up over a few, while a stable stream
drains the sum back to zero. A check alarms while the accumulated evidence is at or above its threshold.

- question: how many of the window's questions are *novel and grouped*: nothing in the reference is as
  close to them as the reference's own questions usually are to each other (the `alpha` quantile of their
  nearest-neighbour similarity), yet another novel question of the window is; plus how many novel ones have
  such a look-alike among the novel questions of the `history` windows before (*persistent*). Scattered
  outliers of known topics are novel but alone; a new topic brings several novel questions that resemble
  each other, and a topic too sparse for two of its askers to meet within one window meets across a few.
  The count's null distribution is drawn from the reference itself (`history` + 1 windows of the same size
  held out of it), so the threshold adapts to the embedding model and to how tightly the domain's questions
  sit.
- coverage: the share of questions whose best knowledge-base match is weak (two-proportion z).
- thumbs_down, approval: the thumbs-down rate and the review approval rate (two-proportion z; for approval
  a drop is the drift).
- confidence: answers' confidence against the reference's (Mann-Whitney U; lower is the drift).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from scipy import stats

from .models_drift import DriftCheck
from .selectors_drift import (
    Questions,
    confidences_between,
    previous_evidence,
    questions_between,
    rejection_counts,
    thumbs_down_counts,
    unit_rows,
    weak_match_counts,
)
from .topics import topics_update

__all__ = ["unit_rows"]  # re-exported: the benchmark and tests scale their vectors as the checks do


# The windows the null is drawn from all share the reference's questions, so they vary less than live
# windows do, and a count is a whole number (a null of all zeros has no spread at all): below this, the
# null's spread is not believed.
NULL_SPREAD_FLOOR = 1.5
# An earlier question this close is the same question asked again (a retry, a reload, the same words):
# one asker, not a second one of a topic. The null, drawn from distinct questions, has none.
SAME_QUESTION = 0.99


@dataclass(frozen=True)
class NoveltyNull:
    """What a window of `window_size` questions from the reference's own distribution looks like, after
    `history` windows from it."""

    threshold: float  # cosine similarity: a question with no reference neighbour this close is novel
    mean: float  # of the novelty count
    sd: float
    history: int = 0  # earlier windows a novel question may find its look-alike in


@dataclass(frozen=True)
class WindowNovelty:
    novel: np.ndarray  # bool per question
    grouped: np.ndarray  # bool per question: novel, and another novel question of the window is within the threshold
    persistent: np.ndarray  # bool per question: novel, and a novel question of an earlier window is within it
    nearest: np.ndarray  # each question's best similarity to the reference

    @property
    def count(self) -> int:
        """The statistic: a question with look-alikes both in its window and before counts twice, since a
        topic that goes on shows as both."""
        return int(self.grouped.sum() + self.persistent.sum())


def _nearest_within(similarities: np.ndarray) -> np.ndarray:
    """Each row's best similarity to the other rows of the same set (itself excluded)."""
    masked = similarities.copy()
    np.fill_diagonal(masked, -np.inf)
    return masked.max(axis=1)


def _novelty(window_sims: np.ndarray, earlier_sims: np.ndarray, nearest: np.ndarray, threshold: float) -> WindowNovelty:
    """`earlier_sims`: the window's similarities to the novel questions of the earlier windows."""
    novel = nearest < threshold
    among = np.where(np.outer(novel, novel), window_sims, -np.inf)
    np.fill_diagonal(among, -np.inf)
    grouped = novel & (among.max(axis=1, initial=-np.inf) >= threshold)
    before = np.where(earlier_sims < SAME_QUESTION, earlier_sims, -np.inf).max(axis=1, initial=-np.inf)
    return WindowNovelty(novel=novel, grouped=grouped, persistent=novel & (before >= threshold), nearest=nearest)


def novelty_null(
    *, reference: np.ndarray, window_size: int, alpha: float, history: int = 0, draws: int = 20, seed: int = 0
) -> NoveltyNull:
    """The novelty threshold of `reference` (unit rows) and the null distribution of a window's count, from
    `draws` runs of `history` + 1 windows held out of the reference and judged against the rest of it, as
    live windows are judged against all of it (a smaller reference makes the null a little conservative).
    `history` is cut to what the reference can hold out while keeping half of itself to judge against."""
    size = len(reference)
    if not 2 <= window_size <= size // 2:
        raise ValueError(f"a window of {window_size} needs a reference of at least {2 * window_size} questions")
    history = min(history, size // (2 * window_size) - 1)
    sims = reference @ reference.T
    threshold = float(np.quantile(_nearest_within(sims), alpha))
    rng = np.random.default_rng(seed)
    counts = [_held_out_count(sims, rng.permutation(size), window_size, history, alpha) for _ in range(draws)]
    return NoveltyNull(threshold=threshold, mean=float(np.mean(counts)), sd=float(np.std(counts, ddof=1)),
                       history=history)


def _held_out_count(sims: np.ndarray, order: np.ndarray, window_size: int, history: int, alpha: float) -> int:
    held, rest = order[: (history + 1) * window_size], order[(history + 1) * window_size:]
    threshold = float(np.quantile(_nearest_within(sims[np.ix_(rest, rest)]), alpha))
    novel_before = held[:-window_size][sims[np.ix_(held[:-window_size], rest)].max(axis=1, initial=-1.0) < threshold]
    window = held[-window_size:]
    seen = _novelty(sims[np.ix_(window, window)], sims[np.ix_(window, novel_before)],
                    sims[np.ix_(window, rest)].max(axis=1), threshold)
    return seen.count


def window_novelty(
    *, window: np.ndarray, reference: np.ndarray, threshold: float, earlier: Sequence[np.ndarray] = ()
) -> WindowNovelty:
    """Which of the window's questions (unit rows) are novel against the reference, and grouped within the
    window or with one of `earlier` (unit rows: the novel questions of the windows before)."""
    nearest = (window @ reference.T).max(axis=1)
    before = np.concatenate([np.zeros((0, window.shape[1]), np.float32), *earlier])
    return _novelty(window @ window.T, window @ before.T, nearest, threshold)


def novelty_z(*, count: int, null: NoveltyNull) -> float:
    return (count - null.mean) / max(null.sd, NULL_SPREAD_FLOOR)


def cusum_step(*, previous: float, z: float, slack: float) -> float:
    """One step of a one-sided CUSUM on z-scores: evidence above `slack` per window accumulates, a
    window below it drains the sum, never below zero."""
    return max(0.0, previous + z - slack)


def proportion_z(*, hits: int, total: int, reference_hits: int, reference_total: int) -> float | None:
    """How far the window's share rose above the reference's, in standard errors (pooled two-proportion
    test); None without answers on either side."""
    if not total or not reference_total:
        return None
    pooled = (hits + reference_hits) / (total + reference_total)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / total + 1 / reference_total))
    if spread == 0:
        return 0.0
    return (hits / total - reference_hits / reference_total) / spread


def shift_down_z(*, window: np.ndarray, reference: np.ndarray) -> float | None:
    """How far the window's values sit below the reference's (Mann-Whitney U, normal approximation with
    ties), as a z-score that is positive when they dropped; None without values on either side."""
    if not len(window) or not len(reference):
        return None
    if np.ptp(np.concatenate([window, reference])) == 0:
        return 0.0
    result = stats.mannwhitneyu(reference, window, alternative="greater", method="asymptotic")
    return float(stats.norm.isf(min(max(result.pvalue, 1e-300), 1.0)))


# --- the beat job: judge the window that just ended ------------------------------------------------


@dataclass(frozen=True)
class Span:
    start: datetime
    end: datetime
    reference_start: datetime
    reference_end: datetime


@dataclass(frozen=True)
class Measure:
    """One kind's window against its reference, before the CUSUM."""

    window_count: int
    reference_count: int
    value: float
    reference_value: float
    z: float
    details: dict[str, Any] = field(default_factory=dict)


def drift_span(*, now: datetime) -> Span:
    """The last complete window (aligned to DRIFT_WINDOW_MINUTES) and its reference: the
    DRIFT_REFERENCE_HOURS that end DRIFT_REFERENCE_GAP_HOURS before the window, so a topic that is only
    starting has not yet become part of what it is compared with."""
    size = timedelta(minutes=settings.DRIFT_WINDOW_MINUTES)
    epoch = datetime(2000, 1, 1, tzinfo=now.tzinfo)
    end = epoch + ((now - epoch) // size) * size
    reference_end = end - size - timedelta(hours=settings.DRIFT_REFERENCE_GAP_HOURS)
    return Span(start=end - size, end=end, reference_start=reference_end - timedelta(
        hours=settings.DRIFT_REFERENCE_HOURS), reference_end=reference_end)


def drift_check_run(*, now: datetime | None = None) -> list[DriftCheck]:
    """Judge every kind of drift for the window that just ended (a kind already judged for it, or without
    enough answers on either side, is left out), update the new-topic clusters, and raise (or resolve) each
    kind's alert. Safe to run more often than the window: it does the work once."""
    span = drift_span(now=now or timezone.now())
    done = set(DriftCheck.objects.filter(window_start=span.start).values_list("kind", flat=True))
    if len(done) == len(DriftCheck.Kind):
        return []
    reference = questions_between(start=span.reference_start, end=span.reference_end,
                                  limit=settings.DRIFT_REFERENCE_MAX_QUESTIONS)
    window = questions_between(start=span.start, end=span.end, limit=settings.DRIFT_REFERENCE_MAX_QUESTIONS,
                               dimensions=reference.vectors.shape[1])
    judges = _judges(window, reference)
    checks = [_check_save(kind=kind, span=span, measure=measure) for kind, judge in judges.items()
              if kind not in done and (measure := judge(span)) is not None]
    question = next((c for c in checks if c.kind == DriftCheck.Kind.QUESTION), None)
    if question is not None:
        _topics_update(span, reference, question.details["novelty_threshold"])
    for check in checks:
        _alert(check)
    return checks


def _topics_update(span: Span, reference: Questions, threshold: float) -> None:
    """Cluster the questions of the topic horizon that are novel against the reference, or were answered
    poorly, into new-topic candidates."""
    recent = questions_between(start=span.end - timedelta(hours=settings.DRIFT_TOPIC_HORIZON_HOURS), end=span.end,
                               limit=settings.DRIFT_TOPIC_MAX_QUESTIONS, dimensions=reference.vectors.shape[1])
    if len(recent):
        nearest = (recent.vectors @ reference.vectors.T).max(axis=1)
        size = span.end - span.start
        windows = np.array([(span.end - asked) // size for asked in recent.asked_at])
        topics_update(questions=recent, novel=nearest < threshold, windows=windows, threshold=threshold,
                      window_end=span.end)


def _judges(window: Questions, reference: Questions) -> dict[str, Callable[[Span], Measure | None]]:
    Kind = DriftCheck.Kind
    return {
        Kind.QUESTION: lambda span: question_measure(
            window=window, reference=reference, earlier=_earlier_windows(span, reference.vectors.shape[1])),
        Kind.COVERAGE: lambda span: _share_measure(span, weak_match_counts),
        Kind.THUMBS_DOWN: lambda span: _share_measure(span, thumbs_down_counts),
        Kind.APPROVAL: lambda span: _share_measure(span, rejection_counts, invert=True),
        Kind.CONFIDENCE: _confidence_measure,
    }


def question_measure(*, window: Questions, reference: Questions, earlier: Sequence[Questions] = ()) -> Measure | None:
    """The novelty count of the window against the reference, `earlier` (the windows before it, newest first)
    giving its novel questions more chances to meet their look-alikes, as a z-score of its null."""
    judged = _fit_window(window, len(reference))
    if len(judged) < settings.DRIFT_MIN_ANSWERS:
        return None
    null = novelty_null(reference=reference.vectors, window_size=len(judged), alpha=settings.DRIFT_NOVELTY_ALPHA,
                        history=len(earlier), draws=settings.DRIFT_NULL_DRAWS)
    novel_before = [_novel_vectors(_fit_window(w, len(reference)), reference, null.threshold)
                    for w in earlier[: null.history]]
    seen = window_novelty(window=judged.vectors, reference=reference.vectors, threshold=null.threshold,
                          earlier=novel_before)
    return Measure(
        window_count=len(judged), reference_count=len(reference), value=seen.count, reference_value=null.mean,
        z=novelty_z(count=seen.count, null=null),
        details={"novel": int(seen.novel.sum()), "grouped": int(seen.grouped.sum()),
                 "persistent": int(seen.persistent.sum()), "history": null.history,
                 "novelty_threshold": null.threshold, "null_sd": null.sd},
    )


def _novel_vectors(window: Questions, reference: Questions, threshold: float) -> np.ndarray:
    return window.vectors[(window.vectors @ reference.vectors.T).max(axis=1, initial=-1.0) < threshold]


def _earlier_windows(span: Span, dimensions: int) -> list[Questions]:
    """The DRIFT_NOVELTY_HISTORY windows before the judged one, newest first, read as it is."""
    size = span.end - span.start
    return [questions_between(start=span.start - n * size, end=span.start - (n - 1) * size,
                              limit=settings.DRIFT_REFERENCE_MAX_QUESTIONS, dimensions=dimensions)
            for n in range(1, settings.DRIFT_NOVELTY_HISTORY + 1)]


def _fit_window(window: Questions, reference_size: int) -> Questions:
    """The window, or a seeded sample of half the reference when it is larger (the null is drawn from
    windows held out of the reference, so a window may be at most half of it)."""
    if len(window) <= reference_size // 2:
        return window
    rows = np.random.default_rng(0).choice(len(window), reference_size // 2, replace=False)
    return window.subset(np.sort(rows))


def _share_measure(span: Span, counts: Callable[..., tuple[int, int]], *, invert: bool = False) -> Measure | None:
    hits, total = counts(start=span.start, end=span.end)
    reference_hits, reference_total = counts(start=span.reference_start, end=span.reference_end)
    if total < settings.DRIFT_MIN_ANSWERS or reference_total < settings.DRIFT_MIN_ANSWERS:
        return None
    z = proportion_z(hits=hits, total=total, reference_hits=reference_hits, reference_total=reference_total)
    share, reference_share = hits / total, reference_hits / reference_total
    if invert:  # shown as the rate people read (approvals), judged as the rate that rises (rejections)
        share, reference_share = 1 - share, 1 - reference_share
    return Measure(window_count=total, reference_count=reference_total, value=share,
                   reference_value=reference_share, z=z or 0.0)


def _confidence_measure(span: Span) -> Measure | None:
    limit = settings.DRIFT_REFERENCE_MAX_QUESTIONS
    window = confidences_between(start=span.start, end=span.end, limit=limit)
    reference = confidences_between(start=span.reference_start, end=span.reference_end, limit=limit)
    if len(window) < settings.DRIFT_MIN_ANSWERS or len(reference) < settings.DRIFT_MIN_ANSWERS:
        return None
    return Measure(window_count=len(window), reference_count=len(reference), value=float(np.median(window)),
                   reference_value=float(np.median(reference)),
                   z=shift_down_z(window=window, reference=reference) or 0.0)


def _check_save(*, kind: str, span: Span, measure: Measure) -> DriftCheck:
    evidence = cusum_step(previous=previous_evidence(kind=kind, before=span.start), z=measure.z,
                          slack=settings.DRIFT_CUSUM_SLACK)
    threshold = settings.DRIFT_CUSUM_THRESHOLD
    fields = {
        "window_end": span.end, "reference_start": span.reference_start, "reference_end": span.reference_end,
        "window_count": measure.window_count, "reference_count": measure.reference_count, "value": measure.value,
        "reference_value": measure.reference_value, "statistic": measure.z, "evidence": evidence,
        "threshold": threshold, "alarm": evidence >= threshold, "details": measure.details,
    }
    try:
        with transaction.atomic():
            return DriftCheck.objects.create(kind=kind, window_start=span.start, **fields)
    except IntegrityError:  # another run judged this window first: its row stands
        return DriftCheck.objects.get(kind=kind, window_start=span.start)


def _alert(check: DriftCheck) -> None:
    """Raise the kind's alert while it alarms (one alert however many windows), resolve it once it no longer
    does."""
    from .alerts import alert_clear, alert_raise

    if not check.alarm:
        alert_clear(key=f"drift:{check.kind}")
        return
    label = check.get_kind_display()
    alert_raise(
        key=f"drift:{check.kind}", kind="drift", severity="warning", title=f"Drift: {label}",
        detail=(f"Window {check.window_start:%Y-%m-%d %H:%M}–{check.window_end:%H:%M}: {check.value:.3g} against "
                f"{check.reference_value:.3g} in the reference (z {check.statistic:+.1f}); accumulated evidence "
                f"{check.evidence:.1f} ≥ {check.threshold:.1f}."),
        data={"check_id": check.pk, "kind": check.kind, "statistic": check.statistic, "evidence": check.evidence,
              "threshold": check.threshold, "window_start": check.window_start.isoformat()},
    )
