"""The evaluation gate: a prompt version does not get the `production` label while its last evaluation
(review/evaluation.py) is worse than production's on the same evaluation set beyond
EXPERIMENTS_GATE_TOLERANCE, unless an operator overrides it with a reason (kept with the move).

A version never evaluated, or compared with a production version never evaluated on that set, passes:
the gate refuses on evidence, it does not demand it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.conf import settings

from .models import PromptVersion
from .selectors import production_version


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    note: str


class GateRefused(Exception):
    def __init__(self, verdict: GateVerdict) -> None:
        super().__init__(verdict.note)
        self.verdict = verdict


def production_gate(*, version: PromptVersion) -> GateVerdict:
    candidate = _last_run(version_id=version.pk)
    production = production_version(prompt_name=version.name)
    if candidate is None or production is None or production.pk == version.pk:
        return GateVerdict(True, "No evaluation to compare: the gate has nothing against it.")
    baseline = _last_run(version_id=production.pk, evaluation_set_id=candidate.evaluation_set_id)
    if baseline is None:
        return GateVerdict(True, f"{production} was never evaluated on that set: nothing to compare.")
    return _compare(baseline.scores, candidate.scores, f"{version}", f"{production}")


def evaluations_of(*, version: PromptVersion, limit: int = 5) -> list[Any]:
    """The version's latest evaluation runs, newest first (what the gate compares)."""
    runs = apps.get_model("review", "EvaluationRun").objects.filter(prompt_version=version)
    return list(runs.select_related("evaluation_set").order_by("-created_at", "-pk")[:limit])


def _last_run(*, version_id: int, evaluation_set_id: int | None = None) -> Any:
    runs = apps.get_model("review", "EvaluationRun").objects.filter(prompt_version_id=version_id, status="done")
    if evaluation_set_id is not None:
        runs = runs.filter(evaluation_set_id=evaluation_set_id)
    return runs.order_by("-finished_at", "-pk").first()


def _compare(baseline: dict[str, Any], candidate: dict[str, Any], name: str, production: str) -> GateVerdict:
    tolerance = settings.EXPERIMENTS_GATE_TOLERANCE
    if baseline.get("overall") is None or candidate.get("overall") is None:
        return GateVerdict(True, "An evaluation has no overall score: nothing to compare.")
    note = (f"{name} scored {candidate['overall']:.3f} overall against {production}'s {baseline['overall']:.3f} "
            f"(tolerance {tolerance:.3f})")
    if candidate["overall"] < baseline["overall"] - tolerance:
        return GateVerdict(False, f"Refused by the evaluation gate: {note}.")
    return GateVerdict(True, f"Passes the evaluation gate: {note}.")
