"""Experiments in admin without a browser: one-click transitions (POST only), arm buttons, and a running
experiment's page saved without touching its arms."""

import pytest
from django.urls import reverse

from experiments.models import Arm, Experiment
from experiments.services import prompt_version_create
from tests.experiments.builders import running_experiment

pytestmark = pytest.mark.django_db


def do(client, experiment, action):
    return client.post(reverse("admin:experiments_experiment_do", args=[experiment.pk, action]), follow=True)


def test_pause_resume_and_stop_are_one_click_each_and_refuse_the_impossible(operator_client):
    experiment = running_experiment()
    assert "is paused" in do(operator_client, experiment, "pause").content.decode()
    assert "is running" in do(operator_client, experiment, "start").content.decode()
    assert "is stopped" in do(operator_client, experiment, "stop").content.decode()
    assert "cannot start from stopped" in do(operator_client, experiment, "start").content.decode()
    stop = reverse("admin:experiments_experiment_do", args=[experiment.pk, "stop"])
    assert operator_client.get(stop).status_code == 405
    assert do(operator_client, experiment, "explode").status_code == 404


def test_a_draft_that_cannot_run_says_why(operator_client):
    experiment = Experiment.objects.create(name="empty")
    html = do(operator_client, experiment, "start").content.decode()
    assert "at least two live" in html
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.DRAFT


def test_starting_from_admin_fixes_the_guardrails_baseline(operator_client):
    experiment = Experiment.objects.create(name="two", guardrails=["latency_p95"])
    a = prompt_version_create(name="coach", system_prompt="A.")
    b = prompt_version_create(name="coach", system_prompt="B.")
    Arm.objects.create(experiment=experiment, name="a", prompt_version=a, is_control=True)
    Arm.objects.create(experiment=experiment, name="b", prompt_version=b)
    do(operator_client, experiment, "start")
    experiment.refresh_from_db()
    assert experiment.status == "running" and experiment.baseline["latency_threshold_ms"] > 0


def test_an_arm_is_paused_and_resumed_from_its_button(operator_client):
    experiment = running_experiment()
    b = experiment.arms.get(name="b")
    url = reverse("admin:experiments_arm_do", args=[experiment.pk, b.pk, "pause"])
    assert "its visitors get control" in operator_client.post(url, follow=True).content.decode()
    b.refresh_from_db()
    assert b.status == Arm.Status.PAUSED and "ops" in b.pause_reason
    operator_client.post(reverse("admin:experiments_arm_do", args=[experiment.pk, b.pk, "resume"]))
    b.refresh_from_db()
    assert b.status == Arm.Status.ACTIVE and b.pause_reason == ""


def test_a_running_experiments_page_saves_without_changing_its_arms(operator_client):
    experiment = running_experiment()
    page = reverse("admin:experiments_experiment_change", args=[experiment.pk])
    assert 'id="experiment-panel"' in operator_client.get(page).content.decode()
    arms = list(Arm.objects.filter(experiment=experiment).values_list("name", "prompt_version_id", "weight"))
    response = operator_client.post(page, {
        "name": experiment.name, "description": "now with notes", "audience_share": "0.5", "languages": "",
        "guardrails": ["thumbs_down_rate"],
        "arms-TOTAL_FORMS": "2", "arms-INITIAL_FORMS": "2", "arms-MIN_NUM_FORMS": "2", "arms-MAX_NUM_FORMS": "1000",
        "arms-0-id": str(experiment.arms.get(name="a").pk), "arms-0-experiment": str(experiment.pk),
        "arms-1-id": str(experiment.arms.get(name="b").pk), "arms-1-experiment": str(experiment.pk),
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    experiment.refresh_from_db()
    assert experiment.description == "now with notes" and experiment.guardrails == ["thumbs_down_rate"]
    assert list(Arm.objects.filter(experiment=experiment).values_list("name", "prompt_version_id", "weight")) == arms
