"""Drift detection: how soon a sustained new topic is caught, how often a stable stream raises a false alarm,
and whether the new-topic clusters are the new topic.

Per trial (a seeded choice of two categories held out): a reference window of 2,000 questions from all the
other categories, then 30 stable windows of 200 questions from those same categories (none from the
reference, none twice in a window), then a new topic: the two held-out categories make up 5 %, 10 % or
20 % of every window for 10 windows, each share continuing from the state the stable windows left. Each
window is judged by monitoring's own detector (`monitoring.drift`: the novelty count, with look-alikes in
the window and among the novel questions of the DRIFT_NOVELTY_HISTORY windows before, against the null drawn
from the reference, its z-score, the CUSUM) with the settings it ships with. At the window
that alarms, the questions of the topic horizon (DRIFT_TOPIC_HORIZON_HOURS of DRIFT_WINDOW_MINUTES windows)
are clustered as the drift report's clusters are (`monitoring.topics.topic_groups`); purity is the share
of clustered questions whose cluster's majority is one of the two held-out categories and who belong to it.

Then one trial at 10 % runs end to end through the beat job's service (`drift_check_run`) on answer facts
in a database of its own, one window an hour: where it alarms, and the purity of the TopicCluster rows the
report shows then.

    make bench                                   # runs this under the embedded Postgres
    python bench/drift.py [--data CSV] [--trials N] [--seed S]
    python bench/drift.py --smoke                # tiny sizes: checks that it runs, measures nothing

The file has the columns `text,category` (default: BANKING77's training file in ../shared/data/banking77/,
CC BY 4.0, Casanueva et al. 2020). Embeddings (the configured model, as the pipeline stores them) are
computed once and kept under var/bench/. Ends with `RESULT false_alarms=… detect_10pct_within5=…
detect_20pct_within2=… delay_windows_10pct=… cluster_purity=…`. Targets: no false alarm in the stable
windows; a 10 % topic caught within 5 windows and a 20 % one within 2, each in ≥ 90 % of trials; purity ≥ 0.8.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import numpy as np
from common import ROOT, parse_args, run_in_bench_database

DB = "spotter_bench_drift"
BANKING77 = ROOT.parent / "shared" / "data" / "banking77"
SHARES = (0.05, 0.10, 0.20)
WITHIN = (1, 2, 3, 5)
SMOKE: dict[str, object] = {
    "trials": 2, "categories": 8, "reference": 300, "window": 40, "stable": 4, "sustain": 3, "service_stable": 2}
TARGET_RATE, TARGET_PURITY = 0.9, 0.8


@dataclass(frozen=True)
class Data:
    texts: list[str]
    categories: np.ndarray
    vectors: np.ndarray  # unit rows


@dataclass
class Trial:
    held: list[str]
    reference: np.ndarray  # row indices into Data
    stable: list[np.ndarray]
    shifted: dict[float, list[np.ndarray]] = field(default_factory=dict)


@dataclass
class Outcome:
    false_alarms: int = 0
    stable_windows: int = 0
    delays: dict[float, list[int | None]] = field(default_factory=lambda: {s: [] for s in SHARES})
    right: int = 0  # clustered questions in a cluster of a held-out category, of that category
    clustered: int = 0
    clusters: int = 0


# --- data --------------------------------------------------------------------------------------------------


def load(path: Path, categories: int | None, seed: int) -> tuple[list[str], np.ndarray]:
    """Each distinct text once (its first category); a seeded sample of `categories` when asked."""
    rows: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            rows.setdefault(row["text"].strip(), row["category"].strip())
    names = sorted(set(rows.values()))
    if categories:
        names = sorted(np.random.default_rng(seed).choice(names, categories, replace=False).tolist())
    kept = [(text, category) for text, category in rows.items() if category in names]
    return [t for t, _ in kept], np.array([c for _, c in kept])


def embeddings(texts: list[str]) -> np.ndarray:
    """The texts embedded with the configured model, cached under var/bench/ by content and model."""
    from django.conf import settings

    from knowledge.embeddings import configured_spec, embed_texts
    from monitoring.drift import unit_rows

    spec = configured_spec()
    digest = hashlib.sha256("\n".join([repr(spec), *texts]).encode()).hexdigest()[:16]
    cache = Path(settings.VAR_DIR) / "bench" / f"drift-{digest}.npy"
    if cache.exists():
        return np.load(cache)
    began = time.perf_counter()
    vectors = unit_rows(np.array(embed_texts(texts, spec), dtype=np.float32))
    print(f"embedded {len(texts)} questions in {time.perf_counter() - began:.0f} s (cached in {cache})")
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


def trial_windows(data: Data, rng: np.random.Generator, args: argparse.Namespace) -> Trial:
    names = sorted(set(data.categories.tolist()))
    held = sorted(rng.choice(names, 2, replace=False).tolist())
    new = np.flatnonzero(np.isin(data.categories, held))
    known = rng.permutation(np.flatnonzero(~np.isin(data.categories, held)))
    reference, rest = known[: args.reference], known[args.reference:]
    trial = Trial(held=held, reference=reference,
                  stable=[rng.choice(rest, args.window, replace=False) for _ in range(args.stable)])
    for share in SHARES:
        count = round(share * args.window)
        order = rng.permutation(new)  # each question of the new topic once before any comes back
        trial.shifted[share] = [
            np.concatenate([rng.choice(rest, args.window - count, replace=False),
                            np.take(order, range(w * count, (w + 1) * count), mode="wrap")])
            for w in range(args.sustain)]
    return trial


# --- the detector, as monitoring runs it -------------------------------------------------------------------


@dataclass
class Stream:
    """What the detector carries from window to window: the CUSUM and the novel questions of the windows
    before (unit rows, newest last)."""

    evidence: float = 0.0
    novel_before: list[np.ndarray] = field(default_factory=list)


def judge(windows: list[np.ndarray], data: Data, trial: Trial, null, stream: Stream) -> tuple[list[bool], Stream]:
    """Whether each window alarms, the stream carried on from `stream`."""
    from django.conf import settings

    from monitoring.drift import cusum_step, novelty_z, window_novelty

    reference, alarms = data.vectors[trial.reference], []
    for rows in windows:
        earlier = stream.novel_before[len(stream.novel_before) - null.history:] if null.history else []
        seen = window_novelty(window=data.vectors[rows], reference=reference, threshold=null.threshold,
                              earlier=earlier)
        evidence = cusum_step(previous=stream.evidence, z=novelty_z(count=seen.count, null=null),
                              slack=settings.DRIFT_CUSUM_SLACK)
        stream = Stream(evidence, [*stream.novel_before[-max(null.history, 1):], data.vectors[rows][seen.novel]])
        alarms.append(evidence >= settings.DRIFT_CUSUM_THRESHOLD)
    return alarms, stream


def horizon() -> int:
    from django.conf import settings

    return max(1, settings.DRIFT_TOPIC_HORIZON_HOURS * 60 // settings.DRIFT_WINDOW_MINUTES)


def clusters_at(windows: list[np.ndarray], data: Data, trial: Trial, threshold: float) -> list[np.ndarray]:
    """The clusters the report shows after the last of `windows` (row indices into Data)."""
    from django.conf import settings

    from monitoring.topics import topic_groups

    recent = windows[-horizon():]
    rows = np.concatenate(recent)
    nearest = (data.vectors[rows] @ data.vectors[trial.reference].T).max(axis=1)
    asked_in = np.concatenate([np.full(len(w), n) for n, w in enumerate(recent)])
    groups = topic_groups(vectors=data.vectors[rows], candidates=nearest < threshold, windows=asked_in,
                          threshold=threshold, min_size=settings.DRIFT_TOPIC_MIN_SIZE)
    return [rows[group] for group in groups]


def purity(clusters: list[np.ndarray], categories: np.ndarray, held: list[str]) -> tuple[int, int]:
    """(questions of the held-out category their cluster is mostly of, questions clustered)."""
    right = 0
    for members in clusters:
        names, counts = np.unique(categories[members], return_counts=True)
        right += int(counts.max()) if names[counts.argmax()] in held else 0
    return right, sum(len(m) for m in clusters)


def run_trial(data: Data, trial: Trial, outcome: Outcome, seed: int) -> None:
    from django.conf import settings

    from monitoring.drift import novelty_null

    null = novelty_null(reference=data.vectors[trial.reference], window_size=len(trial.stable[0]),
                        alpha=settings.DRIFT_NOVELTY_ALPHA, history=settings.DRIFT_NOVELTY_HISTORY,
                        draws=settings.DRIFT_NULL_DRAWS, seed=seed)
    stable, after_stable = judge(trial.stable, data, trial, null, Stream())
    outcome.false_alarms += sum(stable)
    outcome.stable_windows += len(stable)
    for share, windows in trial.shifted.items():
        alarms, _ = judge(windows, data, trial, null, after_stable)
        delay = next((n + 1 for n, alarm in enumerate(alarms) if alarm), None)
        outcome.delays[share].append(delay)
        if delay is not None:
            clusters = clusters_at(trial.stable + windows[:delay], data, trial, null.threshold)
            right, clustered = purity(clusters, data.categories, trial.held)
            outcome.right, outcome.clustered, outcome.clusters = (
                outcome.right + right, outcome.clustered + clustered, outcome.clusters + len(clusters))


# --- end to end, through the beat job's service ------------------------------------------------------------


def service_run(data: Data, trial: Trial, stable: int) -> tuple[int | None, float | None, int]:
    """One trial at 10 % through `drift_check_run` on answer facts, one window an hour: (the window of the
    new topic that alarmed, the purity of the report's clusters then, how many clusters)."""
    from monitoring.drift import drift_check_run, drift_span
    from monitoring.models import AnswerFact, TopicCluster

    start = datetime(2026, 1, 10, tzinfo=UTC)
    categories: dict[UUID, str] = {}

    def write(rows: np.ndarray, at: datetime) -> None:
        facts = [AnswerFact(message_id=uuid4(), conversation_id=uuid4(), status="complete", question=data.texts[i],
                            question_embedding=data.vectors[i].tolist()) for i in rows]
        AnswerFact.objects.bulk_create(facts)
        AnswerFact.objects.filter(pk__in=[f.pk for f in facts]).update(created_at=at)
        categories.update({f.message_id: data.categories[i] for f, i in zip(facts, rows, strict=True)})

    write(trial.reference, start - timedelta(hours=48))
    windows = trial.stable[-stable:] + trial.shifted[0.10]
    for n, rows in enumerate(windows):
        write(rows, start + timedelta(hours=n, minutes=30))
        now = start + timedelta(hours=n + 1, minutes=5)
        checks = drift_check_run(now=now)
        if any(c.alarm for c in checks) and n >= stable:
            shown = TopicCluster.objects.filter(last_seen=drift_span(now=now).end)
            members = [np.array([categories[m] for m in c.message_ids if m in categories]) for c in shown]
            right = sum(_majority_held(m, trial.held) for m in members)
            total = sum(len(m) for m in members)
            return n + 1 - stable, (right / total if total else None), len(members)
    return None, None, 0


def _majority_held(members: np.ndarray, held: list[str]) -> int:
    if not len(members):
        return 0
    names, counts = np.unique(members, return_counts=True)
    return int(counts.max()) if names[counts.argmax()] in held else 0


# --- output ------------------------------------------------------------------------------------------------


def rate(delays: list[int | None], within: int) -> float:
    return sum(d is not None and d <= within for d in delays) / len(delays)


def median_delay(delays: list[int | None]) -> float:
    """Undetected trials count as never (infinite), so the median says whether most were caught."""
    return float(statistics.median(d if d is not None else float("inf") for d in delays))


def print_table(outcome: Outcome, trials: int) -> None:
    print(f"\nFalse alarms: {outcome.false_alarms} of {outcome.stable_windows} stable windows ({trials} trials)\n")
    print("| new topic share | " + " | ".join(f"caught within {w}" for w in WITHIN) + " | median delay |")
    print("|---|" + "---:|" * (len(WITHIN) + 1))
    for share, delays in outcome.delays.items():
        cells = " | ".join(f"{rate(delays, w):.0%}" for w in WITHIN)
        print(f"| {share:.0%} | {cells} | {median_delay(delays):g} |")
    purity_value = outcome.right / outcome.clustered if outcome.clustered else 0.0
    print(f"\nClusters at the alarm: {outcome.clusters} clusters of {outcome.clustered} questions, purity "
          f"{purity_value:.3f}")


def run(args: argparse.Namespace) -> int:
    from django.conf import settings

    texts, categories = load(args.data, args.categories, args.seed)
    data = Data(texts=texts, categories=categories, vectors=embeddings(texts))
    print(f"{len(texts)} questions of {len(set(categories.tolist()))} categories; reference {args.reference}, "
          f"windows of {args.window}; novelty alpha {settings.DRIFT_NOVELTY_ALPHA}, history "
          f"{settings.DRIFT_NOVELTY_HISTORY} windows, CUSUM slack "
          f"{settings.DRIFT_CUSUM_SLACK} threshold {settings.DRIFT_CUSUM_THRESHOLD}; topic horizon {horizon()} windows")
    rng, outcome, began = np.random.default_rng(args.seed), Outcome(), time.perf_counter()
    trials = [trial_windows(data, rng, args) for _ in range(args.trials)]
    for n, trial in enumerate(trials):
        run_trial(data, trial, outcome, seed=args.seed + n)
        print(f"trial {n + 1}: {' + '.join(trial.held)}: delays "
              + ", ".join(f"{s:.0%} {outcome.delays[s][-1] or '—'}" for s in SHARES))
    print(f"{args.trials} trials judged in {time.perf_counter() - began:.0f} s")
    print_table(outcome, args.trials)
    began = time.perf_counter()
    delay, service_purity, shown = service_run(data, trials[0], args.service_stable)
    print(f"\nEnd to end (drift_check_run on answer facts, trial 1 at 10 %): alarm at window {delay or '—'} "
          f"(simulated: {outcome.delays[0.10][0] or '—'}), {shown} clusters shown, purity "
          f"{'—' if service_purity is None else f'{service_purity:.3f}'} ({time.perf_counter() - began:.0f} s)")
    ten, twenty = outcome.delays[0.10], outcome.delays[0.20]
    purity_value = outcome.right / outcome.clustered if outcome.clustered else 0.0
    met = (outcome.false_alarms == 0 and rate(ten, 5) >= TARGET_RATE and rate(twenty, 2) >= TARGET_RATE
           and purity_value >= TARGET_PURITY)
    print(f"\nTargets (no false alarm, 10 % within 5 and 20 % within 2 in ≥ {TARGET_RATE:.0%}, purity ≥ "
          f"{TARGET_PURITY}): {'met' if met else 'NOT met'}")
    print(f"\nRESULT false_alarms={outcome.false_alarms} detect_10pct_within5={rate(ten, 5):.2f} "
          f"detect_20pct_within2={rate(twenty, 2):.2f} delay_windows_10pct={median_delay(ten):g} "
          f"cluster_purity={purity_value:.3f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Spotter drift-detection benchmark")
    parser.add_argument("--data", type=Path, default=BANKING77 / "train.csv", help="CSV with text,category")
    parser.add_argument("--trials", type=int, default=10, help="random choices of the two new categories")
    parser.add_argument("--categories", type=int, default=None, help="a seeded sample of N categories (default: all)")
    parser.add_argument("--reference", type=int, default=2000, help="questions in the reference window")
    parser.add_argument("--window", type=int, default=200, help="questions per window")
    parser.add_argument("--stable", type=int, default=30, help="stable windows before the new topic")
    parser.add_argument("--sustain", type=int, default=10, help="windows the new topic lasts")
    parser.add_argument("--service-stable", type=int, default=5, help="stable windows before it, end to end")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep-db", action="store_true")
    args = parse_args(parser, SMOKE)
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    return run_in_bench_database(lambda: run(args), name=DB, keep_db=args.keep_db)


if __name__ == "__main__":
    sys.exit(main())
