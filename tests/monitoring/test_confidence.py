import random

import pytest
from channels.db import database_sync_to_async as in_db

from monitoring.confidence import confidence_labels, confidence_model_train, confidence_predict, forget_confidence_model
from monitoring.models import AnswerFact, ConfidenceModel
from monitoring.tasks import confidence_model_retrain
from review.models import ReviewItem
from tests.chat.test_pipeline import ask
from tests.factories import AnswerFactory, FeedbackFactory, ReviewItemFactory


@pytest.fixture(autouse=True)
def _no_cached_model():
    """A model cached by one test must not answer in the next (or in the pipeline's tests)."""
    forget_confidence_model()
    yield
    forget_confidence_model()


def features(best: float, language: str = "en") -> dict:
    return {
        "best_dense": best, "fused_margin": best / 4, "hits": 5, "cited": 1 if best > 0.4 else 0,
        "best_cited_dense": best if best > 0.4 else 0.0, "best_lexical": 2 * best, "answer_tokens": 60,
        "offline": True, "language": language, "had_history": False, "injection_suspected": False,
        "confidence_source": "heuristic",
    }


def judge(answer, outcome: str) -> None:
    """Record a trainer's decision (approved, edited, rejected) or a visitor's thumb (up, down)."""
    if outcome in ("up", "down"):
        FeedbackFactory(message=answer, value=outcome)
    else:
        ReviewItemFactory(message=answer, status=outcome)


def judged(n: int, *, seed: int = 0, outcome=None) -> None:
    """`n` answers whose closer best match makes them likelier right, half judged by trainers, half
    by visitors; `outcome` forces every judgement."""
    rng = random.Random(seed)
    for i in range(n):
        best = rng.uniform(0.2, 0.9)
        right = best + rng.gauss(0, 0.08) > 0.55
        answer = AnswerFactory()
        AnswerFact.objects.create(message_id=answer.pk, conversation_id=answer.conversation_id, status="complete",
                                  features=features(best, "en" if i % 3 else "de"))
        by_trainer = ("approved", rng.choice(["rejected", "edited"])) if i % 2 else ("up", "down")
        judge(answer, outcome or by_trainer[0 if right else 1])


def test_it_predicts_a_higher_confidence_for_a_strong_answer_than_a_weak_one(db):
    judged(80)
    model = confidence_model_train(min_labels=50)
    assert model is not None and model.labels == 80
    strong, weak = confidence_predict(features=features(0.85)), confidence_predict(features=features(0.25))
    assert strong is not None and weak is not None
    assert strong > 0.8 and weak < 0.2
    assert model.coefficients[model.feature_names.index("best_dense")] > 0


def test_it_stores_a_sane_calibration_of_unseen_answers(db):
    judged(80)
    model = confidence_model_train(min_labels=50)
    assert model is not None
    assert 0 <= model.brier < 0.2  # well below a coin's 0.25: the features are informative
    assert 0 <= model.ece <= 1
    assert len(model.reliability) == 10 and sum(b["count"] for b in model.reliability) == model.labels
    for row in model.reliability:
        assert row["count"] == 0 or (0 <= row["predicted"] <= 1 and 0 <= row["observed"] <= 1)
        assert row["low"] <= (row["predicted"] if row["count"] else row["low"]) <= row["high"]
    assert set(model.feature_names) >= {"best_dense", "language=en", "language=de", "offline"}
    assert "confidence_source" not in " ".join(model.feature_names)


def test_it_falls_back_when_labels_are_too_few(db, settings):
    settings.CONFIDENCE_MIN_LABELS = 50
    judged(30)
    assert confidence_model_train() is None
    assert confidence_predict(features=features(0.85)) is None
    assert not ConfidenceModel.objects.exists()


def test_it_falls_back_when_every_answer_had_the_same_outcome(db):
    judged(60, outcome="approved")
    assert confidence_model_train(min_labels=50) is None
    assert confidence_predict(features=features(0.85)) is None


def test_an_unedited_approval_or_a_thumbs_up_is_right_and_the_rest_wrong(db):
    answers = {outcome: AnswerFactory() for outcome in ("approved", "edited", "rejected", "up", "down")}
    for outcome, answer in answers.items():
        judge(answer, outcome)
    ReviewItemFactory(status=ReviewItem.Status.PENDING)  # not decided: no label
    labels = confidence_labels()
    assert labels == {answers["approved"].pk: True, answers["up"].pk: True, answers["edited"].pk: False,
                      answers["rejected"].pk: False, answers["down"].pk: False}


def test_a_trainers_decision_outranks_the_visitors_thumb(db):
    answer = AnswerFactory()
    FeedbackFactory(message=answer, value="up")
    ReviewItemFactory(message=answer, status=ReviewItem.Status.EDITED)
    assert confidence_labels() == {answer.pk: False}


def test_the_beat_task_retrains_only_when_new_labels_came_in(db, settings):
    settings.CONFIDENCE_MIN_LABELS = 50
    judged(40)
    assert confidence_model_retrain() is None  # too few yet
    judged(40, seed=1)
    first = confidence_model_retrain()
    assert first is not None and confidence_model_retrain() is None
    judged(10, seed=2)
    assert confidence_model_retrain() not in (None, first)
    assert ConfidenceModel.objects.count() == 2


@pytest.mark.django_db(transaction=True)
async def test_the_pipeline_records_the_features_of_a_generated_answer(kb):
    turn, end = await ask("How do I do a barbell squat?")
    fact = await in_db(AnswerFact.objects.get)(message_id=turn.answer_id)
    assert fact.features["confidence_source"] == "heuristic" and fact.confidence == end["confidence"]
    assert fact.features["best_dense"] > 0.5 and fact.features["cited"] >= 1 and fact.features["hits"] >= 1
    assert fact.features["best_cited_dense"] <= fact.features["best_dense"]
    assert fact.features["fused_margin"] >= 0 and fact.features["answer_tokens"] == fact.tokens_out > 0
    assert fact.features["offline"] is True and fact.features["language"] == "en"
    assert fact.features["had_history"] is False and fact.features["injection_suspected"] is False


@pytest.mark.django_db(transaction=True)
async def test_the_pipeline_uses_the_models_confidence_once_one_exists(kb):
    await in_db(judged)(80)
    assert await in_db(confidence_model_train)(min_labels=50) is not None
    turn, end = await ask("How do I do a barbell squat?")
    fact = await in_db(AnswerFact.objects.get)(message_id=turn.answer_id)
    assert fact.features["confidence_source"] == "model"
    expected = await in_db(confidence_predict)(features=fact.features)
    assert end["confidence"] == fact.confidence == expected


def test_admin_shows_the_calibration_as_a_table(admin_client, db):
    judged(80)
    model = confidence_model_train(min_labels=50)
    assert model is not None
    listing = admin_client.get("/admin/monitoring/confidencemodel/")
    assert listing.status_code == 200 and str(model.labels) in listing.content.decode()
    page = admin_client.get(f"/admin/monitoring/confidencemodel/{model.pk}/change/").content.decode()
    assert page.count("<tr><td>") >= 10 and "<th>observed</th>" in page and "best_dense" in page
    assert admin_client.get("/admin/monitoring/confidencemodel/add/").status_code == 403
