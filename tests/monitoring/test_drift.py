"""Drift checks on answer facts: real question embeddings (the packaged MiniLM model) in a reference window
and in the window just ended; each kind's statistic against its threshold, evidence accumulated across
windows, new-topic clusters and the drift alert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import numpy as np
import pytest

from knowledge.embeddings import embed_texts
from monitoring.drift import cusum_step, drift_check_run, drift_span
from monitoring.models import Alert, AnswerFact, DriftCheck, TopicCluster

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 1, 12, 5, tzinfo=UTC)  # judges 11:00-12:00
EXERCISES = ["squat", "deadlift", "bench press", "push-up", "pull-up", "plank", "lunge", "bicep curl", "calf raise",
             "crunch", "leg press", "overhead press", "burpee", "kettlebell swing", "hip thrust", "dip"]
TEMPLATES = ["How do I do a {} with good form?", "What muscles does the {} work?",
             "How many sets of {} should a beginner do?", "Is the {} bad for my knees?",
             "What is a good alternative to the {}?", "How often should I train the {}?"]
# A new topic: people asking, in their own words, how to cancel.
CANCELLING = [
    "How do I cancel my subscription?", "How can I cancel my membership?", "I want to cancel my subscription, how?",
    "Where do I cancel my plan?", "Can I cancel my subscription online?",
    "How do I stop my subscription from renewing?",
    "Please cancel my membership", "How do I end my subscription?", "Can I get a refund if I cancel my subscription?",
    "How do I cancel and get my money back?", "Is it possible to cancel my plan today?",
    "I need to cancel my membership, what do I do?", "How to cancel the subscription in the app?",
    "Can you cancel my subscription for me?", "What happens if I cancel my subscription?",
]


@pytest.fixture(scope="module")
def embedded() -> dict[str, list[float]]:
    """Every question of these tests, embedded once."""
    texts = [t.format(e) for e in EXERCISES for t in TEMPLATES] + CANCELLING
    return dict(zip(texts, embed_texts(texts), strict=True))


def write_facts(at: datetime, rows: list[dict]) -> None:
    """One answer fact per row of fields, written from `at` on, a second apart."""
    facts = AnswerFact.objects.bulk_create(
        AnswerFact(message_id=uuid4(), conversation_id=uuid4(), status="complete", **fields) for fields in rows)
    for n, fact in enumerate(facts):
        AnswerFact.objects.filter(pk=fact.pk).update(created_at=at + timedelta(seconds=n))


def facts_at(at: datetime, count: int, **fields) -> None:
    write_facts(at, [fields] * count)


def questions_at(at: datetime, texts: list[str], embedded: dict[str, list[float]]) -> None:
    write_facts(at, [{"question": text, "question_embedding": embedded[text]} for text in texts])


def fitness(templates: list[int]) -> list[str]:
    """One question per exercise and template: each exercise and each template of a window also occurs in
    the reference, so a window of these is the reference's own distribution."""
    return [TEMPLATES[t].format(e) for e in EXERCISES for t in templates]


@pytest.fixture
def reference(embedded) -> None:
    span = drift_span(now=NOW)
    questions_at(span.reference_start + timedelta(hours=1), fitness([0, 1, 2, 3]), embedded)


def check(kind: str) -> DriftCheck:
    return DriftCheck.objects.get(kind=kind, window_start=drift_span(now=NOW).start)


def test_a_window_of_the_same_questions_as_the_reference_does_not_alarm(reference, embedded):
    questions_at(drift_span(now=NOW).start, fitness([4, 5]), embedded)

    drift_check_run(now=NOW)

    question = check(DriftCheck.Kind.QUESTION)
    assert question.window_count == 32 and question.reference_count == 64
    assert question.statistic < question.threshold / 2
    assert not question.alarm
    assert not Alert.objects.filter(key="drift:question").exists()
    assert not TopicCluster.objects.exists()


def test_a_new_topic_that_goes_on_alarms_and_shows_as_clusters_that_grow(reference, embedded):
    later = NOW + timedelta(hours=1)
    questions_at(drift_span(now=NOW).start, fitness([4]) + CANCELLING, embedded)
    questions_at(drift_span(now=later).start, fitness([5]) + CANCELLING, embedded)  # asked again the next hour

    drift_check_run(now=NOW)
    first = check(DriftCheck.Kind.QUESTION)
    drift_check_run(now=later)

    second = DriftCheck.objects.get(kind=DriftCheck.Kind.QUESTION, window_start=drift_span(now=later).start)
    assert first.value >= 10 and first.statistic > 2  # most are new and resemble each other
    assert second.alarm and second.evidence > first.evidence >= 0
    alert = Alert.objects.get(key="drift:question", status="open")
    assert alert.kind == "drift" and alert.data["check_id"] == second.pk
    clusters = list(TopicCluster.objects.all())
    for cluster in clusters:  # the topic, maybe told apart by wording; none of the known questions
        assert cluster.status == TopicCluster.Status.EMERGING
        assert set(cluster.examples) <= set(CANCELLING)
    carried = [c for c in clusters if c.first_seen == drift_span(now=NOW).end]
    assert carried and all(c.last_seen == drift_span(now=later).end and len(c.trend) == 2 for c in carried)
    assert sum(c.size for c in clusters) > sum(c.trend[0]["size"] for c in carried)  # it grew


def test_weak_coverage_over_two_windows_alarms_where_one_does_not_and_resolves_once_it_is_back(settings):
    span = drift_span(now=NOW)
    facts_at(span.reference_start + timedelta(hours=2), 180, best_match=0.8)
    facts_at(span.reference_start + timedelta(hours=3), 20, best_match=0.3)
    later = NOW + timedelta(hours=1)
    for window in (span, drift_span(now=later)):
        facts_at(window.start, 24, best_match=0.8)
        facts_at(window.start + timedelta(minutes=30), 16, best_match=0.3)

    drift_check_run(now=NOW)
    first = check(DriftCheck.Kind.COVERAGE)
    drift_check_run(now=later)

    second = DriftCheck.objects.get(kind=DriftCheck.Kind.COVERAGE, window_start=drift_span(now=later).start)
    assert (first.value, first.reference_value) == (0.4, 0.1)
    assert first.statistic > 3 and not first.alarm
    assert second.alarm
    assert second.evidence == pytest.approx(first.evidence + second.statistic - settings.DRIFT_CUSUM_SLACK)
    assert Alert.objects.filter(key="drift:coverage").count() == 1

    calm = NOW + timedelta(hours=2)
    facts_at(drift_span(now=calm).start, 40, best_match=0.8)  # coverage is back
    drift_check_run(now=calm)

    assert not DriftCheck.objects.get(kind=DriftCheck.Kind.COVERAGE, window_start=drift_span(now=calm).start).alarm
    assert Alert.objects.get(key="drift:coverage").status == "resolved"


def test_answers_given_with_less_confidence_than_in_the_reference_alarm(db):
    span = drift_span(now=NOW)
    write_facts(span.reference_start, [{"confidence": float(c)} for c in np.linspace(0.5, 0.9, 100)])
    write_facts(span.start, [{"confidence": float(c)} for c in np.linspace(0.1, 0.4, 40)])

    drift_check_run(now=NOW)

    confidence = check(DriftCheck.Kind.CONFIDENCE)
    assert confidence.alarm and confidence.value < confidence.reference_value
    assert not DriftCheck.objects.filter(kind=DriftCheck.Kind.THUMBS_DOWN).exists()  # no thumbs: nothing judged


def test_each_window_is_judged_once_however_often_the_job_runs(reference, embedded):
    questions_at(drift_span(now=NOW).start, fitness([4, 5]), embedded)

    first = drift_check_run(now=NOW)
    again = drift_check_run(now=NOW + timedelta(minutes=5))

    assert [c.kind for c in first] == [DriftCheck.Kind.QUESTION] and again == []
    assert DriftCheck.objects.count() == 1


def test_evidence_builds_up_over_windows_above_the_slack_and_drains_below_it():
    evidence = 0.0
    for z in (3.0, 3.0, 3.0):
        evidence = cusum_step(previous=evidence, z=z, slack=0.5)
    assert evidence == pytest.approx(7.5)
    evidence = cusum_step(previous=evidence, z=-1.0, slack=0.5)
    assert evidence == pytest.approx(6.0)
    for _ in range(12):  # a stable stream (z around zero) drains it, and it never goes below zero
        evidence = cusum_step(previous=evidence, z=0.0, slack=0.5)
    assert evidence == 0.0


@pytest.mark.parametrize("history, counted", [(2, 1), (0, 0)])
def test_a_topic_too_sparse_to_meet_in_one_window_is_counted_across_windows(settings, embedded, history, counted):
    settings.DRIFT_MIN_ANSWERS, settings.DRIFT_NOVELTY_HISTORY = 10, history
    span = drift_span(now=NOW)
    questions_at(span.reference_start + timedelta(hours=1), fitness([0, 1, 2, 3, 4, 5]), embedded)
    asked = ["How do I cancel my subscription?", "Can I cancel my subscription online?",
             "How do I end my subscription?"]  # one asker an hour, each in their own words
    for hours_before, question in zip((2, 1, 0), asked, strict=True):
        questions_at(span.start - timedelta(hours=hours_before), fitness([hours_before])[:10] + [question], embedded)

    drift_check_run(now=NOW)

    question = check(DriftCheck.Kind.QUESTION)
    assert question.details["novel"] == 1 and question.details["grouped"] == 0  # alone in its window
    assert question.details["history"] == history
    assert question.details["persistent"] == question.value == counted  # met the earlier askers


def test_a_question_asked_again_word_for_word_in_a_later_window_is_not_a_second_asker(settings, embedded):
    settings.DRIFT_MIN_ANSWERS, settings.DRIFT_NOVELTY_HISTORY = 10, 2
    span = drift_span(now=NOW)
    questions_at(span.reference_start + timedelta(hours=1), fitness([0, 1, 2, 3, 4, 5]), embedded)
    for hours_before in (1, 0):
        questions_at(span.start - timedelta(hours=hours_before),
                     fitness([hours_before])[:10] + ["How do I cancel my subscription?"], embedded)

    drift_check_run(now=NOW)

    assert check(DriftCheck.Kind.QUESTION).details["persistent"] == 0
