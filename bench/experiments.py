"""Prompt experiments: does the always-valid test keep its false-positive rate while staff keep looking?

Simulated experiments with thumbs-up as the primary metric, each arm a Bernoulli stream, are looked at
after every 100 answers per arm up to 10,000 answers per arm (100 looks), and stopped at the first look
where the test decides:

- A/A: both arms at a 70% thumbs-up rate. The false-positive rate is the share of experiments that
  ever decide; under continuous monitoring it must stay at or below alpha (0.05).
- A/B: the arm at 75% (+5 points over 70%). Power is the share that decide "winning" within 10,000
  answers per arm; answers to decision are per arm, with an undecided experiment counted as never.

Both run through experiments/stats.py's mixture SPRT (`msprt_p_value` on `proportion_difference`,
vectorised over all experiments) and, on the very same simulated streams, through the naive
baseline it replaces: a two-proportion z-test (`naive_ztest_p_value`, statsmodels) read at every look.
A table of the mSPRT at other mixing spreads (tau) and a smaller (+2 points) lift shows what tau trades.
No database is needed.

    make bench
    python bench/experiments.py [--experiments N] [--max-answers N] [--every N] [--tau T] [--seed S]
    python bench/experiments.py --smoke             # tiny sizes: checks that it runs, measures nothing

Ends with `RESULT aa_false_positive=… naive_aa_false_positive=… power_5pt=… median_answers_to_decision=…`.
Target: A/A false positives ≤ 0.05 under continuous monitoring, power ≥ 0.8 at 10,000 answers per arm.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np
from common import ROOT, parse_args

# This script shares its name with the app: with bench/ ahead of the project root on the path (as when
# the root is already on PYTHONPATH, so common.py adds nothing), `experiments` would be this file.
sys.path.insert(0, str(ROOT))

from experiments.stats import (  # noqa: E402
    ALPHA,
    DEFAULT_TAU,
    Proportion,
    answers_to_decision,
    msprt_p_value,
    naive_ztest_p_value,
    proportion_difference,
)

BASELINE, LIFT, SMALL_LIFT = 0.70, 0.05, 0.02
TAUS = [0.01, 0.02, 0.03, 0.05, 0.10]
SMOKE: dict[str, object] = {"experiments": 40, "max_answers": 1000}
TARGET_FALSE_POSITIVE, TARGET_POWER = 0.05, 0.8


@dataclass(frozen=True)
class Streams:
    """Cumulative successes of each experiment's control and arm at every look (experiments x looks)."""

    control: np.ndarray
    arm: np.ndarray
    trials: np.ndarray  # answers per arm at each look


@dataclass(frozen=True)
class Outcome:
    decided: float  # share of experiments that decided at some look
    winning: float  # share that decided for the arm
    median_answers: float  # per arm, at the decision; undecided counted as never


def simulate(rng: np.random.Generator, experiments: int, looks: int, every: int, arm_rate: float) -> Streams:
    # Successes between two looks are Binomial(every, rate): the same law as `every` Bernoulli answers, in one draw.
    control = rng.binomial(every, BASELINE, size=(experiments, looks)).cumsum(axis=1)
    arm = rng.binomial(every, arm_rate, size=(experiments, looks)).cumsum(axis=1)
    return Streams(control, arm, every * np.arange(1, looks + 1))


def outcome(streams: Streams, decisions: np.ndarray) -> Outcome:
    """First deciding look of each experiment (decisions: experiments x looks, True where it decides)."""
    decided = decisions.any(axis=1)
    first = decisions.argmax(axis=1)
    rows = np.arange(len(first))
    arm_ahead = streams.arm[rows, first] > streams.control[rows, first]
    answers = np.where(decided, streams.trials[first], np.inf)
    return Outcome(float(decided.mean()), float((decided & arm_ahead).mean()), float(np.median(answers)))


def msprt_decisions(streams: Streams, tau: float, alpha: float) -> np.ndarray:
    difference, variance = proportion_difference(streams.control, streams.trials, streams.arm, streams.trials)
    return msprt_p_value(difference, variance, tau=tau) <= alpha


def naive_decisions(streams: Streams, alpha: float) -> np.ndarray:
    """The z-test at every look, until it first decides (later looks cannot change the outcome)."""
    decisions = np.zeros(streams.control.shape, dtype=bool)
    for e, (control, arm) in enumerate(zip(streams.control, streams.arm, strict=True)):
        for look, trials in enumerate(streams.trials):
            at_look = Proportion(int(control[look]), int(trials)), Proportion(int(arm[look]), int(trials))
            if naive_ztest_p_value(*at_look) <= alpha:
                decisions[e, look] = True
                break
    return decisions


def answers(value: float) -> str:
    return "never" if np.isinf(value) else f"{value:,.0f}"


def estimated_answers(args: argparse.Namespace) -> str:
    control = Proportion(round(BASELINE * args.every), args.every)
    arm = Proportion(round((BASELINE + LIFT) * args.every), args.every)
    more = answers_to_decision(control, arm, LIFT, tau=args.tau, alpha=args.alpha)
    return "none" if more is None else f"{args.every + more:,}"


def print_tables(args: argparse.Namespace, runs: dict[str, tuple[Outcome, Outcome]], sweep: list) -> None:
    looks = args.max_answers // args.every
    print(f"\n{args.experiments:,} experiments per row, looked at after every {args.every} answers per arm "
          f"up to {args.max_answers:,} answers per arm ({looks} looks), alpha {args.alpha}; "
          f"thumbs-up {BASELINE:.0%} control, +{LIFT * 100:.0f} points in A/B\n")
    print("| test | A/A false positives | A/B power (+5 pt) | A/B median answers per arm to decision |")
    print("|---|---:|---:|---:|")
    for name, (aa, ab) in runs.items():
        print(f"| {name} | {aa.decided:.3f} | {ab.winning:.3f} | {answers(ab.median_answers)} |")
    print(f"\n\"More answers needed\" as the results page would estimate it at the first look, were the observed "
          f"rates the true ones: {estimated_answers(args)} answers per arm to decision")
    print("\nmSPRT by mixing spread tau (same streams; the +2 pt lift is a further set of A/B experiments)\n")
    print("| tau | A/A false positives | power +5 pt | median answers +5 pt | power +2 pt | median answers +2 pt |")
    print("|---:|---:|---:|---:|---:|---:|")
    for tau, aa, ab, small in sweep:
        print(f"| {tau:.2f} | {aa.decided:.3f} | {ab.winning:.3f} | {answers(ab.median_answers)} | "
              f"{small.winning:.3f} | {answers(small.median_answers)} |")


def run(args: argparse.Namespace) -> int:
    rng = np.random.default_rng(args.seed)
    looks = args.max_answers // args.every
    aa, ab, small = (simulate(rng, args.experiments, looks, args.every, BASELINE + lift)
                     for lift in (0, LIFT, SMALL_LIFT))
    began = time.perf_counter()
    runs = {f"mSPRT (tau {args.tau})": (outcome(aa, msprt_decisions(aa, args.tau, args.alpha)),
                                        outcome(ab, msprt_decisions(ab, args.tau, args.alpha)))}
    msprt_s = time.perf_counter() - began
    began = time.perf_counter()
    runs["naive z-test at every look"] = (outcome(aa, naive_decisions(aa, args.alpha)),
                                          outcome(ab, naive_decisions(ab, args.alpha)))
    print(f"mSPRT {msprt_s:.1f} s, naive z-test {time.perf_counter() - began:.1f} s")
    sweep = [(tau, *(outcome(s, msprt_decisions(s, tau, args.alpha)) for s in (aa, ab, small)))
             for tau in sorted({*TAUS, args.tau})]
    print_tables(args, runs, sweep)
    (msprt_aa, msprt_ab), (naive_aa, _) = runs.values()
    met = msprt_aa.decided <= TARGET_FALSE_POSITIVE and msprt_ab.winning >= TARGET_POWER
    print(f"\nTarget: A/A false positives ≤ {TARGET_FALSE_POSITIVE} and power ≥ {TARGET_POWER} at "
          f"{args.max_answers:,} answers per arm: {'met' if met else 'NOT met'}")
    print(f"\nRESULT aa_false_positive={msprt_aa.decided:.4f} naive_aa_false_positive={naive_aa.decided:.4f} "
          f"power_5pt={msprt_ab.winning:.4f} median_answers_to_decision={msprt_ab.median_answers:.0f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Spotter prompt-experiment statistics benchmark")
    parser.add_argument("--experiments", type=int, default=2000, help="simulated experiments per scenario")
    parser.add_argument("--max-answers", type=int, default=10_000, help="answers per arm at the last look")
    parser.add_argument("--every", type=int, default=100, help="answers per arm between looks")
    parser.add_argument("--tau", type=float, default=DEFAULT_TAU, help="the mSPRT's mixing spread")
    parser.add_argument("--alpha", type=float, default=ALPHA)
    parser.add_argument("--seed", type=int, default=7)
    return run(parse_args(parser, SMOKE))


if __name__ == "__main__":
    sys.exit(main())
