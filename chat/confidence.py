"""An answer's confidence: the learnt predictor's once one is trained, the retrieval heuristic until then."""

from __future__ import annotations

from typing import Any

from knowledge.selectors import SearchHit
from monitoring.confidence import confidence_predict

from .generation import confidence_score


def answer_features(
    *, hits: list[SearchHit], cited: tuple[int, ...], tokens_out: int, offline: bool, language: str,
    had_history: bool, injection_suspected: bool,
) -> dict[str, Any]:
    """What the pipeline knows about a generated answer that may tell how likely it is right. No I/O."""
    ranked = sorted(hits, key=lambda h: h.score, reverse=True)
    best = ranked[0] if ranked else None
    return {
        "best_dense": max((h.dense_score for h in hits), default=0.0),
        # A clear winner is a surer retrieval than several near-equal candidates.
        "fused_margin": (ranked[0].score - ranked[1].score) if len(ranked) > 1 else (best.score if best else 0.0),
        "hits": len(hits),
        "cited": len(cited),
        "best_cited_dense": max((hits[n - 1].dense_score for n in cited), default=0.0),
        "best_lexical": best.lexical_score if best else 0.0,
        "answer_tokens": tokens_out,
        "offline": offline,
        "language": language,
        "had_history": had_history,
        "injection_suspected": injection_suspected,
    }


def answer_confidence(*, hits: list[SearchHit], cited: tuple[int, ...], features: dict[str, Any]) -> tuple[float, str]:
    """The confidence and where it came from: "model" or "heuristic"."""
    predicted = confidence_predict(features=features)
    if predicted is None:
        return confidence_score(hits, cited), "heuristic"
    return predicted, "model"
