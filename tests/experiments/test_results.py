"""Results per arm from monitoring's facts, the verdict in words, and guardrails: a significantly worse
arm is paused by the beat job's look, its visitors go back to control, and an alert is raised."""

import logging
import random
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from experiments.looks import experiment_look
from experiments.models import Arm, Experiment
from experiments.results import experiment_results
from experiments.tasks import experiments_look
from monitoring.models import Alert, AnswerFact, HandoffFact
from monitoring.services import answer_fact_record
from tests.experiments.builders import arm_of, running_experiment
from tests.factories import TrainerFactory

pytestmark = pytest.mark.django_db


def answers(experiment: Experiment, arm: str, n: int, *, down: int = 0, up: int = 0, latency_ms: int = 300,
            cost: str = "0.001", handoffs: int = 0, spread_minutes: int = 0) -> None:
    """`n` answers of an arm over the last `spread_minutes`: `down` with a thumbs down and `up` with a thumbs
    up, scattered among them (a fixed draw per arm)."""
    key = f"{experiment.pk}:{arm}"
    now = timezone.now()
    picked = random.Random(arm).sample(range(n), down + up)
    thumbs = {i: "down" for i in picked[:down]} | {i: "up" for i in picked[down:]}
    for i in range(n):
        fact = answer_fact_record(message_id=uuid.uuid4(), conversation_id=uuid.uuid4(), status="complete",
                                  arm=key, visitor_id=f"{arm}-visitor-{i % 100}", latency_ms=latency_ms + i % 7,
                                  ttft_ms=100 + i % 5,
                                  cost=Decimal(cost), tokens_in=100, tokens_out=40, confidence=0.7 + (i % 3) / 10)
        at = now - timedelta(minutes=spread_minutes * (n - i) / n)
        AnswerFact.objects.filter(pk=fact.pk).update(feedback=thumbs.get(i, ""), created_at=at)
        if i < handoffs:
            HandoffFact.objects.create(handoff_id=hash((key, i)) % 10**9, conversation_id=fact.conversation_id,
                                       reason="asked", requested_at=at)


def row(results: dict, name: str) -> dict:
    return next(a for a in results["arms"] if a["name"] == name)


def test_results_show_each_arms_rates_with_intervals_and_a_verdict_in_words():
    experiment = running_experiment(primary_metric="thumbs_up_rate")
    answers(experiment, "a", 300, up=90, handoffs=6)
    answers(experiment, "b", 300, up=180)

    results = experiment_results(experiment=experiment)

    a, b = row(results, "a"), row(results, "b")
    assert a["answers"] == b["answers"] == 300 and a["visitors"] == 100  # three answers a visitor
    up = b["metrics"]["thumbs_up_rate"]
    assert up["value"] == pytest.approx(0.6) and up["low"] < 0.6 < up["high"]
    assert a["metrics"]["handoff_rate"]["value"] == pytest.approx(0.02)
    assert a["metrics"]["latency_p95"]["value"] is not None and a["metrics"]["cost_per_answer"]["value"] > 0
    assert a["verdict"] is None
    assert b["verdict"]["verdict"] == "winning" and b["verdict"]["words"].startswith("winning: +30.0 points")
    assert results["series"]["datasets"][1]["data"][-1] == pytest.approx(0.6)


def test_an_undecided_arm_says_how_many_more_answers_a_decision_needs():
    experiment = running_experiment()
    answers(experiment, "a", 120, up=36)
    answers(experiment, "b", 120, up=40)
    words = row(experiment_results(experiment=experiment), "b")["verdict"]["words"]
    assert words.startswith("undecided") and "more answers per arm needed" in words


def test_a_significantly_worse_arm_is_paused_its_visitors_go_to_control_and_an_alert_is_raised(caplog, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the tasks run in-process, as the worker would
    experiment = running_experiment(guardrails=["thumbs_down_rate", "latency_p95"])
    answers(experiment, "a", 300, down=15)
    answers(experiment, "b", 300, down=90)
    b_visitors = [v for v in (f"visitor-{n}" for n in range(400)) if arm_of(v).key.endswith(":b")]

    with caplog.at_level(logging.WARNING, logger="experiments.looks"):
        experiments_look()  # the beat job: one look per running experiment

    arm = Arm.objects.get(experiment=experiment, name="b")
    assert arm.status == Arm.Status.PAUSED and "thumbs-down rate" in arm.pause_reason
    assert {arm_of(v).key for v in b_visitors} == {f"{experiment.pk}:a"}
    assert "arm b paused by the thumbs-down rate guardrail" in caplog.text
    alert = Alert.objects.get(key=f"experiment-guardrail:{arm.pk}")
    assert alert.kind == Alert.Kind.EXPERIMENT_GUARDRAIL and alert.status == Alert.Status.OPEN


def test_a_slower_arm_is_paused_by_the_latency_guardrail():
    experiment = running_experiment(guardrails=["latency_p95"])  # the threshold fixed at the start: 1000 ms
    answers(experiment, "a", 300, latency_ms=400)
    answers(experiment, "b", 300, latency_ms=1500)
    assert [b.arm.name for b in experiment_look(experiment_id=experiment.pk)] == ["b"]


def test_an_arm_no_worse_than_control_keeps_running_and_its_look_is_recorded():
    experiment = running_experiment(guardrails=["thumbs_down_rate", "cost_per_answer", "handoff_rate"])
    answers(experiment, "a", 300, down=15, up=60)
    answers(experiment, "b", 300, down=15, up=62)
    assert experiment_look(experiment_id=experiment.pk) == []
    arm = Arm.objects.get(experiment=experiment, name="b")
    assert arm.status == Arm.Status.ACTIVE and set(arm.last_look) == {"difference", "p_value", "low", "high"}


def test_the_results_json_is_4xx_with_a_json_body_on_bad_requests(operator_client, client):
    missing = operator_client.get(reverse("admin:experiments_experiment_results", args=[999999]))
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    experiment = running_experiment()
    client.force_login(TrainerFactory.create(username="no-perms"))
    forbidden = client.get(reverse("admin:experiments_experiment_results", args=[experiment.pk]))
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "forbidden"
    assert operator_client.get(reverse("admin:experiments_experiment_results", args=[experiment.pk])).json()[
        "status"] == "running"
