"""Sticky assignment: a visitor hashed with the experiment's salt gets the same arm on every visit, device
and process; weights and the audience share hold over many visitors; a paused arm's visitors go to
control while everyone else keeps their arm."""

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from experiments.assignment import (
    LiveArm,
    LiveExperiment,
    arm_for_visitor,
    forget_running_experiments,
    in_audience,
    pick_arm,
    unit_hash,
)
from experiments.models import Arm, Experiment
from experiments.selectors import PromptChoice
from experiments.services import arm_pause, experiment_pause, experiment_stop
from tests.experiments.builders import arm_of, running_experiment

VISITORS = [f"visitor-{n}" for n in range(10_000)]


def live(weights: dict[str, float], *, paused: tuple[str, ...] = (), salt: str = "s41t", share: float = 1.0,
         languages: frozenset[str] = frozenset()) -> LiveExperiment:
    arms = tuple(
        LiveArm(key=f"1:{name}", arm_id=n, weight=w, is_control=n == 0, paused=name in paused,
                prompt=PromptChoice(n, name, ""), generation={}, reuse_version_id=n, foreign_version_ids=frozenset())
        for n, (name, w) in enumerate(weights.items())
    )
    return LiveExperiment(experiment_id=1, salt=salt, audience_share=share, languages=languages, arms=arms)


def test_the_hash_is_uniform_in_the_unit_interval_and_fixed_by_salt_and_visitor():
    values = [unit_hash("salt", "arm", v) for v in VISITORS]
    assert all(0 <= x < 1 for x in values)
    assert abs(sum(values) / len(values) - 0.5) < 0.01
    assert values == [unit_hash("salt", "arm", v) for v in VISITORS]
    assert values != [unit_hash("another salt", "arm", v) for v in VISITORS]


def test_weights_are_respected_over_ten_thousand_visitors():
    counts = Counter(pick_arm(live({"a": 1, "b": 3}), v).key for v in VISITORS)
    assert abs(counts["1:b"] / len(VISITORS) - 0.75) < 0.015  # binomial sd 0.0043: over 3 sd


def test_the_audience_share_and_languages_pick_who_is_in():
    experiment = live({"a": 1, "b": 1}, share=0.3, languages=frozenset({"en"}))
    share = sum(in_audience(experiment, v, "en") for v in VISITORS) / len(VISITORS)
    assert abs(share - 0.3) < 0.015
    assert not any(in_audience(experiment, v, "de") for v in VISITORS[:500])


def test_a_paused_arm_sends_its_visitors_to_control_and_moves_nobody_else():
    before = {v: pick_arm(live({"a": 1, "b": 1, "c": 1}), v).key for v in VISITORS[:3000]}
    after = {v: pick_arm(live({"a": 1, "b": 1, "c": 1}, paused=("b",)), v).key for v in VISITORS[:3000]}
    assert {after[v] for v in before if before[v] == "1:b"} == {"1:a"}
    assert all(after[v] == before[v] for v in before if before[v] != "1:b")


def test_the_same_visitor_gets_the_same_arm_in_another_process():
    experiment = live({"a": 1, "b": 2})
    here = [pick_arm(experiment, v).key for v in VISITORS[:200]]
    code = (
        "import json, os, sys, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings'); "
        "django.setup(); from tests.experiments.test_assignment import live, VISITORS; "
        "from experiments.assignment import pick_arm; "
        "print(json.dumps([pick_arm(live({'a': 1, 'b': 2}), v).key for v in VISITORS[:200]]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                            env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert json.loads(result.stdout.strip().splitlines()[-1]) == here


@pytest.mark.django_db
def test_a_visitor_keeps_the_arm_across_reconnects_and_a_restarted_process():
    running_experiment(weights=(1, 1))
    firsts = {v: arm_of(v).key for v in VISITORS[:300]}
    forget_running_experiments()  # what a new process (or a reconnect served by another one) starts with
    assert {v: arm_of(v).key for v in VISITORS[:300]} == firsts
    assert len(set(firsts.values())) == 2


@pytest.mark.django_db
def test_running_experiments_are_read_once_per_process_for_many_answers(django_assert_num_queries):
    running_experiment()
    forget_running_experiments()
    with django_assert_num_queries(2):  # the experiments, their arms
        for visitor in VISITORS[:1000]:
            arm_for_visitor(visitor_id=visitor, language="en")


@pytest.mark.django_db
def test_a_paused_stopped_or_guardrailed_experiment_hands_visitors_back():
    experiment = running_experiment()
    b = Arm.objects.get(experiment=experiment, name="b")
    arm_pause(arm=b, reason="test")
    assert {arm_of(v).key for v in VISITORS[:200]} == {f"{experiment.pk}:a"}
    experiment_pause(experiment=experiment)
    assert arm_of("visitor-1") is None
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.PAUSED
    assert experiment_stop(experiment=experiment) and not experiment_stop(experiment=experiment)
