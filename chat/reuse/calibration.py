"""Calibrating the precision guard: the thresholds that serve the most questions at a target precision.

Labelled questions (text and the answer each deserves) are looked up leave-one-out against the
others, exactly as the cache looks them up; each lookup gives the guard's features (similarity,
gap, support, lexical checks) and whether the nearest answer was the right one. A grid search then
picks the parameters with the highest hit rate whose precision reaches the target.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .guard import LEXICAL, LEXICAL_CHECKS, GuardParams, Neighbour, agreement


@dataclass(frozen=True)
class Observation:
    similarity: float
    gap: float
    support: int
    lexical_ok: bool
    correct: bool  # the nearest stored answer is the one this question deserves


@dataclass(frozen=True)
class Calibration:
    params: GuardParams
    precision: float
    hit_rate: float
    labelled: int


GRID: dict[str, list[Any]] = {
    "min_similarity": [round(float(x), 2) for x in np.arange(0.70, 0.96, 0.02)],
    "min_gap": [0.0, 0.02, 0.04, 0.06, 0.08, 0.10, 0.12, 0.15],
    "min_support": [1, 2, 3, 5, 8],
    "near_duplicate": [0.93, 0.95, 0.97, 0.99],
    "near_duplicate_gap": [0.02, 0.05, 0.10],
}


def observe(
    question: str, answer: str, nearest: Sequence[Neighbour], checks: Sequence[str] = LEXICAL_CHECKS
) -> Observation | None:
    if not nearest:
        return None
    similarity, gap, support = agreement(nearest)
    lexical_ok = not any(LEXICAL[c](question, nearest[0].question) for c in checks)
    return Observation(similarity, gap, support, lexical_ok, nearest[0].answer_key == answer)


def leave_one_out(vectors: np.ndarray, questions: Sequence[str], answers: Sequence[str], k: int = 10,
                  checks: Sequence[str] = LEXICAL_CHECKS) -> list[Observation]:
    """Each labelled question against all the others (exact cosine on normalised vectors)."""
    observations = []
    for start in range(0, len(questions), 512):
        block = vectors[start:start + 512] @ vectors.T
        for offset, row in enumerate(block):
            i = start + offset
            row[i] = -2.0  # not itself
            top = np.argpartition(-row, k)[:k]
            top = top[np.argsort(-row[top])]
            nearest = [Neighbour(int(j), questions[j], answers[j], float(row[j])) for j in top]
            observation = observe(questions[i], answers[i], nearest, checks)
            if observation:
                observations.append(observation)
    return observations


def calibrate(observations: Sequence[Observation], target_precision: float, neighbours: int = 10) -> Calibration:
    """The grid point with the highest hit rate at or above the target precision."""
    sims = np.array([o.similarity for o in observations])
    gaps = np.array([o.gap for o in observations])
    support = np.array([o.support for o in observations])
    ok = np.array([o.lexical_ok for o in observations])
    correct = np.array([o.correct for o in observations])
    best: tuple[float, float, GuardParams] | None = None
    for values in itertools.product(*GRID.values()):
        params = GuardParams(**dict(zip(GRID, values, strict=True)), neighbours=neighbours)
        consensus = (sims >= params.min_similarity) & (gaps >= params.min_gap) & (support >= params.min_support)
        duplicate = (sims >= params.near_duplicate) & (gaps >= params.near_duplicate_gap)
        hit = ok & (consensus | duplicate)
        count = int(hit.sum())
        if not count:
            continue
        precision = float(correct[hit].sum()) / count
        hit_rate = count / len(observations)
        if precision >= target_precision and (best is None or hit_rate > best[1]):
            best = (precision, hit_rate, params)
    if best is None:
        raise ValueError(f"no threshold reaches precision {target_precision} on these {len(observations)} questions")
    return Calibration(best[2], best[0], best[1], len(observations))
