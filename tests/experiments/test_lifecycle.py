"""An experiment's states are guarded: it starts only when it can run, moves only along allowed
transitions, and declaring a winner deploys the winning version (recorded)."""

import pytest
from django.core.exceptions import ValidationError

from experiments.models import PRODUCTION, Arm, Experiment, PromptLabelMove
from experiments.selectors import answer_prompt_version
from experiments.services import (
    arm_pause,
    experiment_declare_winner,
    experiment_start,
    experiment_stop,
    prompt_version_create,
)
from tests.experiments.builders import running_experiment
from tests.factories import TrainerFactory

pytestmark = pytest.mark.django_db


def test_an_experiment_with_one_arm_or_no_control_cannot_start():
    version = prompt_version_create(name="coach", system_prompt="Be brief.")
    experiment = Experiment.objects.create(name="lonely")
    Arm.objects.create(experiment=experiment, name="a", prompt_version=version)
    with pytest.raises(ValidationError) as refused:
        experiment_start(experiment=experiment)
    assert "at least two live" in str(refused.value) and "one arm must be the control" in str(refused.value)
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.DRAFT


def test_arms_on_one_version_must_share_reuse():
    version = prompt_version_create(name="coach", system_prompt="Be brief.")
    experiment = Experiment.objects.create(name="models")
    Arm.objects.create(experiment=experiment, name="a", prompt_version=version, is_control=True)
    other = Arm.objects.create(experiment=experiment, name="b", prompt_version=version, model="bigger")
    with pytest.raises(ValidationError, match="share reuse"):
        experiment_start(experiment=experiment)
    Arm.objects.filter(pk=other.pk).update(share_reuse=True)
    assert experiment_start(experiment=experiment)


def test_a_stopped_experiment_never_starts_again_and_control_is_never_paused():
    experiment = running_experiment()
    assert experiment_stop(experiment=experiment)
    assert not experiment_start(experiment=experiment)
    assert not arm_pause(arm=experiment.arms.get(is_control=True), reason="no")


def test_declaring_a_winner_stops_the_experiment_and_moves_production_once():
    ops = TrainerFactory.create(username="ops")
    experiment = running_experiment(name="terse")
    b = experiment.arms.get(name="b")

    assert experiment_declare_winner(experiment=experiment, arm=b, user=ops)
    assert not experiment_declare_winner(experiment=experiment, arm=b, user=ops)

    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.STOPPED and experiment.winner == b
    assert answer_prompt_version() == b.prompt_version
    move = PromptLabelMove.objects.filter(label=PRODUCTION).first()
    assert move.to_version == b.prompt_version and move.moved_by == ops and "terse" in move.reason
