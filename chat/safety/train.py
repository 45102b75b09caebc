"""Training the offline detectors (`manage.py safety_train`), and the held-out splits the benchmark
measures them on. Everything is seeded: the same data gives the same artefacts in chat/safety/trained/.

Data (../shared/data/, see SOURCE.md in chat/safety/trained/ for attribution):
- injection: jailbreak-classification (70 % of it, seeded; the other 30 % is held out), BANKING77's
  training questions and exercise questions as benign traffic, and the hand-written multilingual seeds
  in trained/injection_seeds.csv. The Giskard attacks are never trained on: they test paraphrase.
- moderation: OpenAI's moderation samples (70 %, seeded), with BANKING77 training questions, exercise
  questions, sentences of the exercise instructions (what answers are made of) and the fitness idioms
  of trained/moderation_seeds.csv ("this workout is killing me") as more clean text.
"""

from __future__ import annotations

import csv
import gzip
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from . import linear

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
TRAINED = Path(__file__).resolve().parent / "trained"
SEED = 19
HELD_OUT = 0.3
MODERATION_CATEGORIES = ("S", "H", "V", "HR", "SH", "S3", "H2", "V2")
# OpenAI's names for the sample set's category codes (what moderation verdicts report).
CATEGORY_NAMES = {
    "S": "sexual", "H": "hate", "V": "violence", "HR": "harassment", "SH": "self-harm",
    "S3": "sexual/minors", "H2": "hate/threatening", "V2": "violence/graphic",
}
# Thresholds are chosen on the training data's own held-back folds: for injection the benign false
# alarms allowed, for moderation the recall wanted on flagged text (its unflagged samples are hard
# near-misses, so a false-flag bound there would leave little recall).
INJECTION_FALSE_ALARM = 0.002
MODERATION_RECALL = 0.85


@dataclass(frozen=True)
class Labelled:
    text: str
    label: int  # 1: attack / flagged
    source: str


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def split(rows: list[Labelled], share: float = HELD_OUT, seed: int = SEED) -> tuple[list[Labelled], list[Labelled]]:
    """(train, held out): a seeded shuffle, the last `share` held out."""
    shuffled = rows[:]
    random.Random(seed).shuffle(shuffled)
    cut = round(len(shuffled) * (1 - share))
    return shuffled[:cut], shuffled[cut:]


def jailbreak_rows(data: Path = DATA) -> list[Labelled]:
    rows = read_csv(data / "jailbreak-classification" / "jailbreak_train.csv")
    return [Labelled(r["prompt"], int(r["type"] == "jailbreak"), f"jailbreak-classification/{r['type']}")
            for r in rows]


def banking_questions(name: str, data: Path = DATA) -> list[str]:
    return [r["text"] for r in read_csv(data / "banking77" / name)]


def exercise_questions(limit: int = 400) -> list[str]:
    """Questions a fitness-coach visitor asks, built from the demo knowledge base's exercise names."""
    names = [e["name"] for e in json.loads((ROOT / "demo" / "free-exercise-db" / "exercises.json").read_text())]
    templates = ("How do I do a {}?", "What muscles does the {} work?", "Is the {} safe with a bad knee?",
                 "How many sets of {} should a beginner do?", "Can you explain the {} step by step?")
    random.Random(SEED).shuffle(names)
    return [templates[i % len(templates)].format(n) for i, n in enumerate(names[:limit])]


def exercise_instructions(limit: int = 1500) -> list[str]:
    """Sentences of the demo knowledge base: what answers are made of."""
    exercises = json.loads((ROOT / "demo" / "free-exercise-db" / "exercises.json").read_text())
    steps = [step for e in exercises for step in e["instructions"]]
    random.Random(SEED).shuffle(steps)
    return steps[:limit]


def seed_rows() -> list[Labelled]:
    return [Labelled(r["text"], int(r["label"] == "attack"), f"seeds/{r['lang']}")
            for r in read_csv(TRAINED / "injection_seeds.csv")]


def injection_training_set(data: Path = DATA) -> list[Labelled]:
    train, _ = split(jailbreak_rows(data))
    benign = [Labelled(t, 0, "banking77/train") for t in banking_questions("train.csv", data)]
    benign += [Labelled(t, 0, "exercises") for t in exercise_questions()]
    return train + benign + seed_rows()


def injection_held_out(data: Path = DATA) -> list[Labelled]:
    return split(jailbreak_rows(data))[1]


def moderation_rows(data: Path = DATA) -> list[tuple[str, dict[str, int]]]:
    with gzip.open(data / "moderation-openai-samples" / "samples-1680.jsonl.gz", "rt", encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [(r["prompt"], {c: int(r.get(c) or 0) for c in MODERATION_CATEGORIES}) for r in records]


def moderation_split(data: Path = DATA) -> tuple[list[tuple[str, dict[str, int]]], list[tuple[str, dict[str, int]]]]:
    rows = moderation_rows(data)
    order = list(range(len(rows)))
    random.Random(SEED).shuffle(order)
    cut = round(len(rows) * (1 - HELD_OUT))
    return [rows[i] for i in order[:cut]], [rows[i] for i in order[cut:]]


def fit(texts: list[str], targets: np.ndarray, outputs: tuple[str, ...], c: float) -> linear.LinearTextModel:
    """One logistic regression per output column of `targets` (rows × outputs, 0/1)."""
    hashers = linear.vectorizers()
    raw = linear.counts(texts, hashers)
    idf_full = linear.idf_of(raw)
    index = np.flatnonzero(idf_full)
    block_of = index // 2**linear.HASH_BITS
    x = linear.features(linear.compact(raw, index), idf_full[index], block_of, len(hashers))
    coef, intercept = [], []
    for column in range(targets.shape[1]):
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
        model.fit(x, targets[:, column])
        coef.append(model.coef_[0])
        intercept.append(model.intercept_[0])
    meta = {"blocks": [list(b) for b in linear.BLOCKS], "hash_bits": linear.HASH_BITS, "C": c}
    return linear.LinearTextModel(outputs, {}, index, idf_full[index], np.array(coef, dtype=np.float32),
                                  np.array(intercept, dtype=np.float32), meta)


def out_of_fold(texts: list[str], labels: np.ndarray, c: float, folds: int = 5) -> np.ndarray:
    """Each row's probability from a model that did not see it (to choose a threshold honestly)."""
    scores = np.zeros(len(texts))
    for train_idx, test_idx in StratifiedKFold(folds, shuffle=True, random_state=SEED).split(texts, labels):
        model = fit([texts[i] for i in train_idx], labels[train_idx, None], ("p",), c)
        scores[test_idx] = [model.probabilities(texts[i])["p"] for i in test_idx]
    return scores


def threshold_for(scores: np.ndarray, labels: np.ndarray, false_alarm: float) -> float:
    """The lowest threshold that keeps the negatives' false alarms at or under `false_alarm`."""
    negatives = np.sort(scores[labels == 0])
    allowed = int(np.floor(false_alarm * len(negatives)))
    return float(negatives[len(negatives) - allowed - 1]) + 1e-6 if len(negatives) > allowed else 0.5


def threshold_for_recall(scores: np.ndarray, labels: np.ndarray, recall: float) -> float:
    """The highest threshold that still catches `recall` of the positives."""
    positives = np.sort(scores[labels == 1])[::-1]
    return float(positives[max(0, int(np.ceil(recall * len(positives))) - 1)])


def train_injection(data: Path = DATA, c: float = 10.0) -> linear.LinearTextModel:
    rows = injection_training_set(data)
    texts, labels = [r.text for r in rows], np.array([r.label for r in rows])
    threshold = threshold_for(out_of_fold(texts, labels, c), labels, INJECTION_FALSE_ALARM)
    model = fit(texts, labels[:, None], ("injection",), c)
    model.thresholds["injection"] = threshold
    model.meta["trained_on"] = _counts_by_source(rows)
    return model


def train_moderation(data: Path = DATA, c: float = 10.0) -> linear.LinearTextModel:
    train, _ = moderation_split(data)
    clean_texts = banking_questions("train.csv", data)[::4] + exercise_questions() + exercise_instructions()
    clean_texts += [r["text"] for r in read_csv(TRAINED / "moderation_seeds.csv")]
    clean = [(t, dict.fromkeys(MODERATION_CATEGORIES, 0)) for t in clean_texts]
    rows = train + clean
    texts = [t for t, _ in rows]
    flagged = np.array([int(any(cats.values())) for _, cats in rows])
    threshold = threshold_for_recall(out_of_fold(texts, flagged, c), flagged, MODERATION_RECALL)
    targets = np.array([[int(any(cats.values())), *(cats[k] for k in MODERATION_CATEGORIES)] for _, cats in rows])
    outputs = ("flagged", *(CATEGORY_NAMES[k] for k in MODERATION_CATEGORIES))
    model = fit(texts, targets, outputs, c)
    model.thresholds["flagged"] = threshold
    model.meta["trained_on"] = {"moderation-openai-samples (70 %)": len(train),
                                "clean: banking77 (every 4th), exercise questions and steps, seeds": len(clean)}
    return model


def _counts_by_source(rows: Iterable[Labelled]) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in rows:
        key = row.source.split("/")[0] if row.source.startswith("seeds") else row.source
        out[key] = out.get(key, 0) + 1
    return out


def train_all(data: Path = DATA, target: Path = TRAINED) -> dict[str, Path]:
    target.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, trainer in (("injection", train_injection), ("moderation", train_moderation)):
        trainer(data).save(target / name)
        written[name] = target / name
    return written
