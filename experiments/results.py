"""An experiment's numbers per arm, read from monitoring's facts (never chat's tables), and what the
statistics (experiments/stats.py) make of them.

Every rate is per answer the arm gave since the experiment started (a handoff counts against the
conversation's answers, as monitoring's handoff rates do); approvals are per answer a trainer decided.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db.models import Avg, Count, F, Q, QuerySet, Sum, Variance
from django.db.models.functions import TruncHour, TruncMinute
from django.utils import timezone

from monitoring.models import AnswerFact, HandoffFact

from . import stats
from .models import Arm, Experiment

# Each primary metric: whether higher is better, and whether it is a rate (else a mean).
METRICS: dict[str, tuple[bool, bool]] = {
    "thumbs_up_rate": (True, True),
    "thumbs_down_rate": (False, True),
    "handoff_rate": (False, True),
    "reuse_rate": (True, True),
    "confidence": (True, False),
    "cost_per_answer": (False, False),
}
_TOKENS = F("tokens_in") + F("tokens_out")
_FEEDBACK = {"thumbs_up_rate": Q(feedback="up"), "thumbs_down_rate": Q(feedback="down"),
             "reuse_rate": ~Q(reuse="none")}


@dataclass(frozen=True)
class ArmNumbers:
    """One arm's samples: what the summaries and the tests are computed from."""

    arm: Arm
    answers: int
    visitors: int
    rates: dict[str, stats.Proportion]  # thumbs up/down, handoff, reuse, approval
    means: dict[str, stats.Moments]  # confidence, cost, tokens
    latencies: list[float]
    ttfts: list[float]

    def sample(self, metric: str) -> stats.Proportion | stats.Moments:
        return self.rates[metric] if metric in self.rates else self.means[metric]


def arm_facts(experiment: Experiment, arm: Arm) -> QuerySet[AnswerFact]:
    since = experiment.started_at or experiment.created_at
    return AnswerFact.objects.filter(arm=arm.key, status="complete", created_at__gte=since)


def arm_numbers(experiment: Experiment, arm: Arm) -> ArmNumbers:
    facts = arm_facts(experiment, arm)
    row = facts.aggregate(
        answers=Count("pk"), visitors=Count("visitor_id", distinct=True),
        up=Count("pk", filter=Q(feedback="up")), down=Count("pk", filter=Q(feedback="down")),
        reused=Count("pk", filter=~Q(reuse="none")),
        confidence_n=Count("confidence"), confidence_mean=Avg("confidence"),
        confidence_var=Variance("confidence", sample=True), cost_mean=Avg("cost"),
        cost_var=Variance("cost", sample=True), tokens_mean=Avg(_TOKENS), tokens_var=Variance(_TOKENS, sample=True),
    )
    n = row["answers"]
    handoffs = min(_handoffs(experiment, facts), n)
    decided, approved = _reviews(facts)
    return ArmNumbers(
        arm=arm, answers=n, visitors=row["visitors"],
        rates={"thumbs_up_rate": stats.Proportion(row["up"], n), "thumbs_down_rate": stats.Proportion(row["down"], n),
               "handoff_rate": stats.Proportion(handoffs, n), "reuse_rate": stats.Proportion(row["reused"], n),
               "approval_rate": stats.Proportion(approved, decided)},
        means={"confidence": _moments(row["confidence_n"], row["confidence_mean"], row["confidence_var"]),
               "cost_per_answer": _moments(n, row["cost_mean"], row["cost_var"]),
               "tokens_per_answer": _moments(n, row["tokens_mean"], row["tokens_var"])},
        latencies=_durations(facts, "latency_ms"), ttfts=_durations(facts, "ttft_ms"),
    )


def _durations(facts: QuerySet[AnswerFact], field: str) -> list[float]:
    return [float(v) for v in facts.exclude(**{field: None}).values_list(field, flat=True) if v is not None]


def _moments(count: int, mean: Any, variance: Any) -> stats.Moments:
    return stats.Moments(count, float(mean) if mean is not None else math.nan,
                         float(variance) if variance is not None else math.nan)


def _handoffs(experiment: Experiment, facts: QuerySet[AnswerFact]) -> int:
    since = experiment.started_at or experiment.created_at
    return HandoffFact.objects.filter(
        conversation_id__in=facts.values("conversation_id"), requested_at__gte=since).count()


def _reviews(facts: QuerySet[AnswerFact]) -> tuple[int, int]:
    """Answers a trainer decided, and of those approved (as given or edited). Read by name: review's
    models are review's, and this is the only question asked of them."""
    item = apps.get_model("review", "ReviewItem")
    row = item.objects.filter(message_id__in=facts.values("message_id")).aggregate(
        decided=Count("pk", filter=Q(status__in=["approved", "edited", "rejected"])),
        approved=Count("pk", filter=Q(status__in=["approved", "edited"])),
    )
    return row["decided"], row["approved"]


def experiment_baseline(*, experiment: Experiment) -> dict[str, float]:
    """What the guardrails are measured against, fixed when the experiment starts: control's latency
    p95 and mean cost over the days before (answers outside any experiment)."""
    control = experiment.arms.filter(is_control=True).first()
    since = timezone.now() - timedelta(days=settings.EXPERIMENTS_BASELINE_DAYS)
    facts = AnswerFact.objects.filter(
        prompt_version_id=control.prompt_version_id if control else None, status="complete", arm="",
        created_at__gte=since)
    latencies = _durations(facts, "latency_ms")
    # Fewer answers than this make a p95 that is mostly noise: the configured threshold is safer.
    enough = len(latencies) >= 20
    threshold = stats.quantile_summary(latencies, 0.95).value if enough else settings.EXPERIMENTS_LATENCY_THRESHOLD_MS
    cost = facts.aggregate(c=Avg("cost"))["c"]
    return {"latency_threshold_ms": float(threshold), "cost_mean": float(cost or 0)}


# --- what the page shows ---------------------------------------------------------------------------


def experiment_results(*, experiment: Experiment) -> dict[str, Any]:
    """Everything the results page draws, JSON-ready (no NaN or infinity: null)."""
    arms = list(experiment.arms.filter(shadow=False).select_related("prompt_version"))
    numbers = [arm_numbers(experiment, arm) for arm in arms]
    control = next((n for n in numbers if n.arm.is_control), None)
    return {
        "status": experiment.status, "primary_metric": experiment.primary_metric,
        "primary_label": Experiment.Metric(experiment.primary_metric).label,
        "started_at": experiment.started_at.isoformat() if experiment.started_at else None,
        "updated_at": timezone.now().isoformat(),
        "arms": [_arm_row(experiment, n, control) for n in numbers],
        "series": primary_series(experiment=experiment, arms=arms),
    }


def _arm_row(experiment: Experiment, numbers: ArmNumbers, control: ArmNumbers | None) -> dict[str, Any]:
    arm = numbers.arm
    metrics = {name: _estimate(stats.rate_summary(p)) for name, p in numbers.rates.items()}
    metrics |= {name: _estimate(stats.mean_summary(m)) for name, m in numbers.means.items()}
    for name, values, q in (("latency_p50", numbers.latencies, 0.5), ("latency_p95", numbers.latencies, 0.95),
                            ("ttft_p50", numbers.ttfts, 0.5), ("ttft_p95", numbers.ttfts, 0.95)):
        metrics[name] = _estimate(stats.quantile_summary(values, q))
    verdict = None
    if control is not None and not arm.is_control:
        verdict = primary_verdict(experiment, control, numbers)
    return {
        "id": arm.pk, "name": arm.name, "key": arm.key, "is_control": arm.is_control, "status": arm.status,
        "pause_reason": arm.pause_reason, "prompt_version": str(arm.prompt_version), "model": arm.model,
        "weight": arm.weight, "share_reuse": arm.share_reuse, "answers": numbers.answers,
        "visitors": numbers.visitors, "metrics": metrics,
        "verdict": _verdict_json(verdict) if verdict else None,
        "winner": experiment.winner_id == arm.pk,
    }


def primary_verdict(experiment: Experiment, control: ArmNumbers, arm: ArmNumbers) -> stats.ArmVerdict:
    """The always-valid verdict on the primary metric, continuing from the arm's last recorded look."""
    metric = experiment.primary_metric
    higher_is_better, _ = METRICS[metric]
    look = arm.arm.last_look
    previous = stats.SequentialResult(**look) if look else None
    return stats.arm_verdict(
        control.sample(metric), arm.sample(metric), tau=experiment.min_effect, higher_is_better=higher_is_better,
        previous=previous, min_answers=settings.EXPERIMENTS_MIN_ANSWERS,
    )


def _verdict_json(verdict: stats.ArmVerdict) -> dict[str, Any]:
    more = verdict.more_answers_per_arm
    return {"verdict": verdict.verdict.value, "words": verdict.words, "p_value": _num(verdict.result.p_value),
            "more_answers_per_arm": stats.about(more) if more is not None else None}


def _estimate(estimate: stats.Estimate) -> dict[str, float | None]:
    return {"value": _num(estimate.value), "low": _num(estimate.low), "high": _num(estimate.high)}


def _num(x: float) -> float | None:
    return None if x is None or math.isnan(x) or math.isinf(x) else round(float(x), 6)


# --- the primary metric over time ------------------------------------------------------------------

# Minute points while an experiment is young, hour points after.
MINUTE_POINTS_FOR = timedelta(hours=6)


def primary_series(*, experiment: Experiment, arms: list[Arm]) -> dict[str, Any]:
    """Per arm, the primary metric over everything up to each minute (or hour): what the verdict
    reads at that time, so the lines settle as answers come in."""
    since = experiment.started_at or experiment.created_at
    trunc = TruncMinute if timezone.now() - since < MINUTE_POINTS_FOR else TruncHour
    per_arm = {arm.name: _buckets(experiment, arm, trunc) for arm in arms}
    times = sorted({t for buckets in per_arm.values() for t in buckets})
    return {"labels": [t.isoformat() for t in times],
            "datasets": [{"arm": name, "data": _cumulative(buckets, times)} for name, buckets in per_arm.items()]}


def _buckets(experiment: Experiment, arm: Arm, trunc: Any) -> dict[datetime, tuple[float, int]]:
    """Per time bucket: the sum of the metric (successes, or values) and the answers."""
    metric = experiment.primary_metric
    facts = arm_facts(experiment, arm).annotate(t=trunc("created_at")).values("t")
    if metric in _FEEDBACK:
        rows = facts.annotate(s=Count("pk", filter=_FEEDBACK[metric]), n=Count("pk"))
    elif metric == "handoff_rate":
        return _handoff_buckets(experiment, arm, trunc)
    else:
        field = "confidence" if metric == "confidence" else "cost"
        rows = facts.exclude(**{field: None}).annotate(s=Sum(field), n=Count("pk"))
    return {r["t"]: (float(r["s"] or 0), r["n"]) for r in rows}


def _handoff_buckets(experiment: Experiment, arm: Arm, trunc: Any) -> dict[datetime, tuple[float, int]]:
    facts = arm_facts(experiment, arm)
    answers = dict(facts.annotate(t=trunc("created_at")).values("t").annotate(n=Count("pk")).values_list("t", "n"))
    since = experiment.started_at or experiment.created_at
    handoffs = dict(HandoffFact.objects.filter(conversation_id__in=facts.values("conversation_id"),
                                               requested_at__gte=since)
                    .annotate(t=trunc("requested_at")).values("t").annotate(n=Count("pk")).values_list("t", "n"))
    return {t: (float(handoffs.get(t, 0)), answers.get(t, 0)) for t in set(answers) | set(handoffs)}


def _cumulative(buckets: dict[datetime, tuple[float, int]], times: list[datetime]) -> list[float | None]:
    total, count, points = 0.0, 0, []
    for t in times:
        s, n = buckets.get(t, (0.0, 0))
        total, count = total + s, count + n
        points.append(round(total / count, 6) if count else None)
    return points
