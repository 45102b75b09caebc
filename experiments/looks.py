"""The beat job's look at each running experiment: guardrails first (a significantly worse arm is
paused, its visitors go back to control, an alert is raised), then the primary metric's
always-valid result is recorded so the next look continues from it."""

from __future__ import annotations

import dataclasses
import logging
import math

from django.conf import settings

from monitoring.alerts import alert_raise

from . import stats
from .models import Arm, Experiment
from .results import ArmNumbers, arm_numbers, primary_verdict
from .services import arm_pause

logger = logging.getLogger(__name__)

LABELS = dict(Experiment.Guardrail.choices)


@dataclasses.dataclass(frozen=True)
class Breach:
    arm: Arm
    result: stats.GuardrailResult


def experiment_look(*, experiment_id: int) -> list[Breach]:
    """Check one running experiment; the arms paused by a guardrail."""
    experiment = Experiment.objects.filter(pk=experiment_id, status=Experiment.Status.RUNNING).first()
    if experiment is None:
        return []
    arms = list(experiment.arms.filter(shadow=False).select_related("prompt_version"))
    control_arm = next((a for a in arms if a.is_control), None)
    if control_arm is None:
        return []
    control = arm_numbers(experiment, control_arm)
    breaches = []
    for arm in arms:
        if arm.is_control or arm.status != Arm.Status.ACTIVE:
            continue
        numbers = arm_numbers(experiment, arm)
        breach = _first_breach(experiment, control, numbers)
        if breach is not None and arm_pause(arm=arm, reason=_reason(breach)):
            _raise(experiment, breach)
            breaches.append(breach)
        _record_look(experiment, control, numbers)
    return breaches


def guardrails(experiment: Experiment) -> list[stats.Guardrail]:
    """The experiment's guardrails with their sensitivity, fixed from the baseline taken at its start."""
    rate_tau = settings.EXPERIMENTS_GUARDRAIL_RATE_TAU
    cost_mean = float(experiment.baseline.get("cost_mean") or 0)
    cost_tau = max(cost_mean * settings.EXPERIMENTS_GUARDRAIL_COST_SHARE, 1e-6)
    taus = {"cost_per_answer": cost_tau, "latency_p95": rate_tau, "handoff_rate": rate_tau,
            "thumbs_down_rate": rate_tau}
    return [stats.Guardrail(metric=m, tau=taus[m]) for m in experiment.guardrails if m in taus]


def guardrail_sample(experiment: Experiment, numbers: ArmNumbers, metric: str) -> stats.Proportion | stats.Moments:
    if metric == "latency_p95":
        threshold = float(experiment.baseline.get("latency_threshold_ms") or settings.EXPERIMENTS_LATENCY_THRESHOLD_MS)
        return stats.share_over(numbers.latencies, threshold)
    return numbers.sample(metric)


def _first_breach(experiment: Experiment, control: ArmNumbers, arm: ArmNumbers) -> Breach | None:
    for guardrail in guardrails(experiment):
        result = stats.guardrail_check(
            guardrail, guardrail_sample(experiment, control, guardrail.metric),
            guardrail_sample(experiment, arm, guardrail.metric), min_answers=settings.EXPERIMENTS_MIN_ANSWERS,
        )
        if result.worse:
            return Breach(arm.arm, result)
    return None


def _reason(breach: Breach) -> str:
    r = breach.result
    return (f"guardrail {LABELS.get(r.metric, r.metric)}: significantly worse than control "
            f"(difference {r.difference:+.4g}, always-valid p = {r.p_value:.3g}); paused automatically, "
            "its visitors get control")


def _raise(experiment: Experiment, breach: Breach) -> None:
    """An alert through monitoring, and a log line whatever happens to it."""
    arm, r = breach.arm, breach.result
    title = f"Experiment {experiment.name}: arm {arm.name} paused by the {LABELS.get(r.metric, r.metric)} guardrail"
    logger.warning("%s (%s)", title, _reason(breach))
    try:
        alert_raise(key=f"experiment-guardrail:{arm.pk}", kind="experiment_guardrail", severity="warning",
                    title=title, detail=_reason(breach),
                    data={"experiment_id": experiment.pk, "arm": arm.key, "metric": r.metric,
                          "difference": r.difference, "p_value": r.p_value})
    except Exception:  # the pause stands even when alerting fails
        logger.exception("could not raise the guardrail alert for arm %s", arm.key)


def _record_look(experiment: Experiment, control: ArmNumbers, arm: ArmNumbers) -> None:
    result = primary_verdict(experiment, control, arm).result
    if not all(math.isfinite(x) for x in dataclasses.astuple(result)):
        return  # too few answers for an interval yet: nothing to carry over
    Arm.objects.filter(pk=arm.arm.pk).update(last_look=dataclasses.asdict(result))
