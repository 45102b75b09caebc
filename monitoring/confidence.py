"""The confidence predictor: the chance that an answer is right, learnt from how answers fared.

Trained from the features each answer's fact holds and the outcomes trainers and visitors gave:
approved unedited or a thumbs-up is right; rejected, edited or a thumbs-down is wrong. A trainer's
decision outranks the visitor's thumb on the same answer. Predicting needs no scikit-learn: the
stored coefficients are applied here, so the answer path stays light.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cachetools.func
import numpy as np
from django.apps import apps
from django.conf import settings

from .models import AnswerFact, ConfidenceModel

# Strings in the features that are categories: each value seen in training becomes a 0/1 feature.
# Other strings (confidence_source) describe the prediction itself and are never learnt from.
CATEGORICAL = ("language",)
RELIABILITY_BINS = 10
MAX_FOLDS = 5

# Read for every generated answer, so kept per process this long: a model trained in this process is
# seen at once (confidence_model_train forgets it), one trained by the beat worker within this time.
MODEL_CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class Fitted:
    feature_names: tuple[str, ...]
    coefficients: tuple[float, ...]
    intercept: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]


# --- Predicting ---------------------------------------------------------------------------------


def confidence_predict(*, features: Mapping[str, Any]) -> float | None:
    """The newest model's probability that this answer is right; None while no model is trained."""
    fitted = _newest_model()
    if fitted is None:
        return None
    return round(fitted_probability(fitted=fitted, features=features), 3)


def fitted_probability(*, fitted: Fitted, features: Mapping[str, Any]) -> float:
    row = feature_vector(features=features, names=fitted.feature_names)
    z = fitted.intercept + sum(
        c * (x - m) / s for c, x, m, s in zip(fitted.coefficients, row, fitted.mean, fitted.scale, strict=True)
    )
    return 1.0 / (1.0 + math.exp(-max(-500.0, min(500.0, z))))


@cachetools.func.ttl_cache(maxsize=1, ttl=MODEL_CACHE_SECONDS)
def _newest_model() -> Fitted | None:
    row = ConfidenceModel.objects.order_by("-trained_at", "-pk").first()
    if row is None:
        return None
    return Fitted(tuple(row.feature_names), tuple(row.coefficients), row.intercept, tuple(row.scaler_mean),
                  tuple(row.scaler_scale))


def forget_confidence_model() -> None:
    _newest_model.cache_clear()


def feature_vector(*, features: Mapping[str, Any], names: Sequence[str]) -> list[float]:
    """Features as numbers in the model's order: a missing one is 0, `language=de` is 1 for German."""
    row = []
    for name in names:
        key, _, category = name.partition("=")
        value = features.get(key)
        if category:
            row.append(1.0 if value == category else 0.0)
        else:
            row.append(float(value) if isinstance(value, int | float) else 0.0)
    return row


def feature_names(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every numeric (or boolean) feature seen, plus one per category value seen."""
    names: set[str] = set()
    for features in rows:
        for key, value in features.items():
            if isinstance(value, int | float):
                names.add(key)
            elif key in CATEGORICAL and isinstance(value, str):
                names.add(f"{key}={value}")
    return sorted(names)


# --- Labels -------------------------------------------------------------------------------------


def confidence_labels() -> dict[uuid.UUID, bool]:
    """Each judged answer's outcome by message id: True when it was right.

    Review and chat are reached by model name, not imported: monitoring sits below both."""
    feedback = apps.get_model("chat", "Feedback")._default_manager.values_list("message_id", "value")
    labels = {message_id: value == "up" for message_id, value in feedback}
    decided = apps.get_model("review", "ReviewItem")._default_manager.filter(
        status__in=["approved", "edited", "rejected"]).values_list("message_id", "status")
    labels.update({message_id: status == "approved" for message_id, status in decided})
    return labels


def labelled_features() -> tuple[list[dict[str, Any]], list[bool]]:
    """The features and outcome of every judged answer generated with features recorded."""
    labels = confidence_labels()
    facts = AnswerFact.objects.filter(message_id__in=labels, status="complete").exclude(features={})
    rows, outcomes = [], []
    for message_id, features in facts.order_by("created_at").values_list("message_id", "features"):
        rows.append(features)
        outcomes.append(labels[message_id])
    return rows, outcomes


# --- Training -----------------------------------------------------------------------------------


def confidence_model_train(
    *, min_labels: int | None = None, only_if_new_labels: bool = False
) -> ConfidenceModel | None:
    """Fit a model on every labelled answer and store it with its cross-validated calibration.

    None when there are fewer than `min_labels` (default CONFIDENCE_MIN_LABELS) labels, fewer than two
    of either outcome (no fold could hold both), or, with `only_if_new_labels`, nothing new since the
    newest model."""
    rows, outcomes = labelled_features()
    needed = settings.CONFIDENCE_MIN_LABELS if min_labels is None else min_labels
    if len(rows) < max(needed, 1) or min(sum(outcomes), len(outcomes) - sum(outcomes)) < 2:
        return None
    newest = ConfidenceModel.objects.order_by("-trained_at", "-pk").first()
    if only_if_new_labels and newest is not None and newest.labels == len(rows):
        return None
    names = feature_names(rows)
    x = np.array([feature_vector(features=f, names=names) for f in rows], dtype=float)
    y = np.array(outcomes, dtype=int)
    fitted = _fit(x, y, names)
    calibration = _calibration(y, _out_of_fold(x, y))
    model = ConfidenceModel.objects.create(
        labels=len(y), positives=int(y.sum()), feature_names=names, coefficients=list(fitted.coefficients),
        intercept=fitted.intercept, scaler_mean=list(fitted.mean), scaler_scale=list(fitted.scale), **calibration,
    )
    forget_confidence_model()
    return model


def confidence_fit_evaluate(
    *, train: Sequence[tuple[Mapping[str, Any], bool]], test: Sequence[tuple[Mapping[str, Any], bool]],
    baseline: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Fit on `train` (features, right?) pairs held in memory and measure calibration on `test`.

    For offline evaluation (bench/calibration.py): nothing is read from or written to the database,
    so labels need not exist as reviews or thumbs. `baseline`, one probability per test pair (the
    heuristic, say), is measured by the same code so the two are comparable. Returns the fitted
    model, its test probabilities and `predictor` (and `baseline`) calibration: brier, ece, reliability."""
    names = feature_names([features for features, _ in train])
    x = np.array([feature_vector(features=f, names=names) for f, _ in train], dtype=float)
    fitted = _fit(x, np.array([right for _, right in train], dtype=int), names)
    y = np.array([right for _, right in test], dtype=int)
    p = np.array([fitted_probability(fitted=fitted, features=f) for f, _ in test], dtype=float)
    return {
        "fitted": fitted, "probabilities": p.tolist(), "predictor": _calibration(y, p),
        "baseline": None if baseline is None else _calibration(y, np.array(baseline, dtype=float)),
    }


def _pipeline() -> Any:
    # Imported here: every process that answers imports this module, only the trainer needs sklearn.
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # Balanced classes would bias the probabilities; calibrated probabilities are the point.
    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))


def _fit(x: np.ndarray, y: np.ndarray, names: list[str]) -> Fitted:
    pipeline = _pipeline().fit(x, y)
    scaler, regression = pipeline[0], pipeline[-1]
    return Fitted(tuple(names), tuple(float(c) for c in regression.coef_[0]), float(regression.intercept_[0]),
                  tuple(float(m) for m in scaler.mean_), tuple(float(s) for s in scaler.scale_))


def _out_of_fold(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each label's probability from a model that did not see it: calibration on unseen answers
    without setting aside a test split the final model would lose."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = StratifiedKFold(n_splits=min(MAX_FOLDS, int(y.sum()), int(len(y) - y.sum())), shuffle=True,
                            random_state=0)
    probabilities: np.ndarray = cross_val_predict(_pipeline(), x, y, cv=folds, method="predict_proba")[:, 1]
    return probabilities


def _calibration(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """Brier score, expected calibration error and the reliability table of probabilities `p`."""
    edges = np.linspace(0.0, 1.0, RELIABILITY_BINS + 1)
    bins = np.clip(np.digitize(p, edges[1:-1]), 0, RELIABILITY_BINS - 1)
    table, ece = [], 0.0
    for n in range(RELIABILITY_BINS):
        inside = bins == n
        count = int(inside.sum())
        predicted = float(p[inside].mean()) if count else None
        observed = float(y[inside].mean()) if count else None
        if predicted is not None and observed is not None:
            ece += count / len(y) * abs(predicted - observed)
        table.append({"low": round(float(edges[n]), 2), "high": round(float(edges[n + 1]), 2),
                      "predicted": predicted, "observed": observed, "count": count})
    return {"brier": float(np.mean((p - y) ** 2)), "ece": ece, "reliability": table}
