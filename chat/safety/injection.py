"""Prompt-injection detection: a linear classifier over character and word n-grams
(chat/safety/trained/injection.*, `manage.py safety_train`), so paraphrases and other languages'
attacks are caught, not only one English phrasing. Pure CPU, well under a millisecond a question."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

from .linear import LinearTextModel
from .train import TRAINED


@dataclass(frozen=True)
class InjectionVerdict:
    suspected: bool
    score: float  # the classifier's probability of an attack, 0..1


@lru_cache(maxsize=1)
def _model() -> LinearTextModel:
    return LinearTextModel.load(TRAINED / "injection")


def injection_check(text: str, threshold: float | None = None) -> InjectionVerdict:
    """`threshold`: the policy's (chat.safety.policy); by default SAFETY_INJECTION_THRESHOLD when set,
    else the one chosen in training."""
    model = _model()
    score = model.probabilities(text)["injection"]
    limit = threshold or settings.SAFETY_INJECTION_THRESHOLD or model.thresholds["injection"]
    return InjectionVerdict(suspected=score >= limit, score=round(score, 4))
