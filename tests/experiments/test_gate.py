"""The evaluation gate: a version whose last evaluation is worse than production's beyond the tolerance does
not get `production`, unless an operator overrides it with a reason, which is recorded with the move."""

import pytest
from django.urls import reverse
from django.utils import timezone

from experiments.gate import GateRefused, production_gate
from experiments.models import PRODUCTION, PromptLabelMove
from experiments.selectors import answer_prompt_version
from experiments.services import (
    experiment_declare_winner,
    prompt_label_move,
    prompt_label_rollback,
    prompt_version_create,
)
from review.models import EvaluationRun, EvaluationSet
from tests.experiments.builders import running_experiment

pytestmark = pytest.mark.django_db


def evaluated(version, overall: float, evaluation_set: EvaluationSet) -> EvaluationRun:
    return EvaluationRun.objects.create(evaluation_set=evaluation_set, prompt_version=version, status="done",
                                        scores={"overall": overall, "failed": 0}, finished_at=timezone.now())


@pytest.fixture
def versions():
    evaluation_set = EvaluationSet.objects.create(name="held-out")
    production = prompt_version_create(name="coach", system_prompt="Be brief.", labels=[PRODUCTION])
    worse = prompt_version_create(name="coach", system_prompt="Be vague.")
    evaluated(production, 0.80, evaluation_set)
    evaluated(worse, 0.70, evaluation_set)
    return production, worse, evaluation_set


def test_a_version_evaluated_worse_than_production_is_refused(versions):
    production, worse, _ = versions
    with pytest.raises(GateRefused, match="0.700 overall against coach v1's 0.800"):
        prompt_label_move(version=worse, label=PRODUCTION)
    assert answer_prompt_version() == production


def test_an_override_with_a_reason_deploys_it_and_the_reason_is_recorded(versions, settings):
    _, worse, _ = versions
    move = prompt_label_move(version=worse, label=PRODUCTION, override="the set predates the new exercises")
    assert answer_prompt_version() == worse
    assert "override of the evaluation gate: the set predates the new exercises" in move.reason


def test_within_the_tolerance_or_without_an_evaluation_it_passes(versions, settings):
    _, worse, _ = versions
    settings.EXPERIMENTS_GATE_TOLERANCE = 0.15
    assert production_gate(version=worse).passed
    unevaluated = prompt_version_create(name="coach", system_prompt="Be new.")
    settings.EXPERIMENTS_GATE_TOLERANCE = 0.0
    assert production_gate(version=unevaluated).passed
    assert not production_gate(version=worse).passed


def test_other_labels_and_rollbacks_are_not_gated(versions):
    production, worse, _ = versions
    prompt_label_move(version=worse, label="staging")
    prompt_label_move(version=worse, label=PRODUCTION, override="trying it")
    evaluated(production, 0.10, EvaluationSet.objects.get())  # production now evaluates far worse
    assert prompt_label_rollback(prompt_name="coach", label=PRODUCTION) is not None
    assert answer_prompt_version() == production


def test_declaring_a_worse_evaluated_winner_is_refused_and_changes_nothing():
    experiment = running_experiment()
    evaluation_set = EvaluationSet.objects.create(name="held-out")
    arm = experiment.arms.get(name="b")
    evaluated(experiment.arms.get(name="a").prompt_version, 0.9, evaluation_set)
    evaluated(arm.prompt_version, 0.5, evaluation_set)
    with pytest.raises(GateRefused):
        experiment_declare_winner(experiment=experiment, arm=arm, user=None)
    experiment.refresh_from_db()
    assert experiment.winner is None and experiment.status == "running"


def test_in_admin_the_gate_is_shown_and_asks_for_a_reason(versions, operator_client):
    _, worse, _ = versions
    page = reverse("admin:experiments_promptversion_change", args=[worse.pk])
    html = operator_client.get(page).content.decode()
    assert "Refused by the evaluation gate" in html and 'name="override"' in html
    assert "<td>held-out</td><td>done</td><td>0.700</td>" in html

    refused = operator_client.post(reverse("admin:experiments_prompt_label", args=[worse.pk]),
                                   {"label": PRODUCTION}, follow=True)
    assert "Give a reason to override it" in refused.content.decode()
    operator_client.post(reverse("admin:experiments_prompt_label", args=[worse.pk]),
                         {"label": PRODUCTION, "override": "judge disagrees"})
    assert answer_prompt_version() == worse
    assert "judge disagrees" in PromptLabelMove.objects.first().reason
