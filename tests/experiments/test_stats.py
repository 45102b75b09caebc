"""The experiment statistics against simulated data whose answer is known: identical arms stay
undecided however often they are looked at, real differences are found, guardrails flag only a
worse arm, and the words on the results page follow the numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from experiments.stats import (
    ALPHA,
    Guardrail,
    Moments,
    Proportion,
    SequentialResult,
    Verdict,
    about,
    answers_to_decision,
    arm_verdict,
    guardrail_check,
    mean_summary,
    msprt,
    msprt_half_width,
    msprt_p_value,
    naive_ztest_p_value,
    one_sided_log_ratio,
    proportion_difference,
    quantile_summary,
    rate_summary,
    sequential_update,
    share_over,
)

EXPERIMENTS = 2000
# A look after every 10 answers per arm from 100 to 3,000: far more often than staff would look.
TRIALS = 100 + 10 * np.arange(291)


def cumulative_successes(rng: np.random.Generator, rate: float, experiments: int = EXPERIMENTS) -> np.ndarray:
    """Successes so far at each look (experiments x looks), drawn between looks as one binomial each."""
    steps = np.diff(TRIALS, prepend=0)
    return rng.binomial(steps, rate, size=(experiments, len(TRIALS))).cumsum(axis=1)


def share_ever_decided(control: np.ndarray, arm: np.ndarray, *, tau: float = 0.05) -> float:
    difference, variance = proportion_difference(control, TRIALS, arm, TRIALS)
    return float((msprt_p_value(difference, variance, tau=tau) <= ALPHA).any(axis=1).mean())


def naive_share_ever_decided(control: np.ndarray, arm: np.ndarray) -> float:
    difference, _ = proportion_difference(control, TRIALS, arm, TRIALS)
    pooled = (control + arm) / (2 * TRIALS)
    z = difference / np.sqrt(pooled * (1 - pooled) * 2 / TRIALS)
    return float((2 * stats.norm.sf(np.abs(z)) <= ALPHA).any(axis=1).mean())


@pytest.mark.parametrize("rate", [0.7, 0.05])
def test_identical_arms_stay_undecided_however_often_they_are_looked_at(rate):
    rng = np.random.default_rng(11)
    control, arm = cumulative_successes(rng, rate), cumulative_successes(rng, rate)
    assert share_ever_decided(control, arm) <= ALPHA
    # The same looks with a z-test each time: what the sequential test exists to prevent, and proof
    # that this simulation would notice a test that fails to prevent it.
    assert naive_share_ever_decided(control, arm) > 3 * ALPHA


def test_identical_arms_on_a_skewed_mean_stay_undecided():
    rng = np.random.default_rng(12)
    costs = rng.lognormal(0.0, 1.0, size=(2, 1000, int(TRIALS[-1])))
    totals, squares = costs.cumsum(axis=2)[..., TRIALS - 1], (costs**2).cumsum(axis=2)[..., TRIALS - 1]
    means = totals / TRIALS
    variances = (squares - TRIALS * means**2) / (TRIALS - 1)
    p = msprt_p_value(means[1] - means[0], (variances[0] + variances[1]) / TRIALS, tau=0.1 * math.exp(0.5))
    assert (p <= ALPHA).any(axis=1).mean() <= ALPHA


def test_a_large_effect_is_detected_and_in_the_right_direction():
    rng = np.random.default_rng(13)
    control, arm = cumulative_successes(rng, 0.70, 500), cumulative_successes(rng, 0.75, 500)
    assert share_ever_decided(control, arm) >= 0.9
    assert arm_verdict(Proportion(2100, 3000), Proportion(2400, 3000)).verdict == Verdict.WINNING
    assert arm_verdict(Proportion(2400, 3000), Proportion(2100, 3000)).verdict == Verdict.LOSING
    assert arm_verdict(Proportion(2100, 3000), Proportion(2400, 3000), higher_is_better=False).verdict == Verdict.LOSING


def test_the_confidence_sequence_covers_the_true_difference_at_every_look():
    rng = np.random.default_rng(14)
    control, arm = cumulative_successes(rng, 0.70), cumulative_successes(rng, 0.75)
    difference, variance = proportion_difference(control, TRIALS, arm, TRIALS)
    width = msprt_half_width(variance, tau=0.05)
    missed = (np.abs(difference - 0.05) > width).any(axis=1)
    assert missed.mean() <= ALPHA


def test_a_decision_once_reached_is_kept_over_later_looks():
    decided = msprt(Proportion(700, 1000), Proportion(790, 1000))
    later = msprt(Proportion(1400, 2000), Proportion(1450, 2000))
    assert decided.p_value <= ALPHA < later.p_value
    kept = sequential_update(decided, later)
    assert kept.p_value == decided.p_value and kept.low == max(decided.low, later.low)
    assert arm_verdict(Proportion(1400, 2000), Proportion(1450, 2000), previous=decided).verdict == Verdict.WINNING
    swung = Proportion(1400, 2000), Proportion(1390, 2000)  # noise took the latest difference below 0
    assert arm_verdict(*swung, previous=decided).verdict == Verdict.WINNING


def test_a_clearly_worse_arm_trips_a_guardrail_and_an_equal_one_does_not():
    handoffs = Guardrail("handoff_rate", tau=0.02)
    assert guardrail_check(handoffs, Proportion(100, 2000), Proportion(200, 2000)).worse
    assert not guardrail_check(handoffs, Proportion(100, 2000), Proportion(100, 2000)).worse
    assert not guardrail_check(handoffs, Proportion(200, 2000), Proportion(100, 2000)).worse  # better


def test_a_guardrail_follows_the_metrics_direction_and_tolerates_its_margin():
    answered = Guardrail("answered_rate", tau=0.02, lower_is_better=False)
    assert guardrail_check(answered, Proportion(1800, 2000), Proportion(1600, 2000)).worse
    tolerant = Guardrail("handoff_rate", tau=0.02, margin=0.10)
    assert not guardrail_check(tolerant, Proportion(100, 2000), Proportion(200, 2000)).worse


def test_a_guardrail_on_cost_flags_a_dearer_arm_with_a_bound_below_the_true_excess():
    rng = np.random.default_rng(15)
    control, dearer = rng.lognormal(0.0, 1.0, 3000), rng.lognormal(0.0, 1.0, 3000) * 1.3
    cost = Guardrail("cost_per_answer", tau=0.1)
    result = guardrail_check(cost, Moments.of(control), Moments.of(dearer))
    assert result.worse and 0 < result.worse_by_at_least < result.difference
    assert not guardrail_check(cost, Moments.of(control), Moments.of(rng.lognormal(0.0, 1.0, 3000))).worse


def test_a_guardrail_on_latency_p95_flags_an_arm_with_a_longer_tail():
    rng = np.random.default_rng(16)
    control, slower = rng.gamma(2.0, 1.0, 3000), rng.gamma(2.0, 1.4, 3000)
    threshold = float(np.quantile(rng.gamma(2.0, 1.0, 3000), 0.95))  # fixed before the experiment
    latency = Guardrail("latency_p95", tau=0.02)
    assert guardrail_check(latency, share_over(control, threshold), share_over(slower, threshold)).worse
    same = rng.gamma(2.0, 1.0, 3000)
    assert not guardrail_check(latency, share_over(control, threshold), share_over(same, threshold)).worse


def test_guardrails_on_identical_arms_rarely_fire_however_often_they_are_looked_at():
    rng = np.random.default_rng(17)
    control, arm = cumulative_successes(rng, 0.05), cumulative_successes(rng, 0.05)
    difference, variance = proportion_difference(control, TRIALS, arm, TRIALS)
    fired = (one_sided_log_ratio(difference, variance, tau=0.02) >= math.log(1 / ALPHA)).any(axis=1)
    assert fired.mean() <= ALPHA


def test_nothing_is_decided_or_flagged_on_too_few_answers():
    verdict = arm_verdict(Proportion(10, 40), Proportion(38, 40))
    assert verdict.verdict == Verdict.UNDECIDED and (verdict.more_answers_per_arm or 0) >= 60
    assert not guardrail_check(Guardrail("handoff_rate", tau=0.02), Proportion(0, 40), Proportion(30, 40)).worse
    assert msprt(Proportion(0, 0), Proportion(5, 10)).p_value == 1.0


def test_the_answers_a_decision_needs_are_enough_if_the_rates_hold():
    control, arm = Proportion(350, 500), Proportion(370, 500)  # +4 points, undecided
    verdict = arm_verdict(control, arm, mde=0.04)
    more = verdict.more_answers_per_arm
    assert verdict.verdict == Verdict.UNDECIDED and more is not None and more > 0
    after = 500 + round(more * 1.05)  # a little over: the counts at `after` round the rates
    assert arm_verdict(Proportion(round(0.70 * after), after), Proportion(round(0.74 * after), after)).verdict \
        == Verdict.WINNING
    short = 500 + more // 2
    assert arm_verdict(Proportion(round(0.70 * short), short), Proportion(round(0.74 * short), short)).verdict \
        == Verdict.UNDECIDED


def test_a_larger_difference_or_more_answers_so_far_need_fewer_answers():
    control = Proportion(350, 500)
    small, large = (answers_to_decision(control, Proportion(s, 500), e) for s, e in [(360, 0.02), (375, 0.05)])
    assert small is not None and large is not None and large < small
    later = answers_to_decision(Proportion(1400, 2000), Proportion(1440, 2000), 0.02)
    assert later is not None and later < small


def test_the_words_say_winning_losing_or_how_many_more_answers():
    assert arm_verdict(Proportion(700, 1000), Proportion(800, 1000)).words.startswith("winning: +10.0 points")
    assert arm_verdict(Proportion(800, 1000), Proportion(700, 1000)).words.startswith("losing: -10.0 points")
    near_zero = arm_verdict(Proportion(700, 1000), Proportion(705, 1000))
    assert near_zero.assumed_effect == near_zero.mde == 0.05
    assert "more answers per arm needed to detect a difference of 5.0 points" in near_zero.words
    tie = arm_verdict(Proportion(7000, 10000), Proportion(7000, 10000))
    assert tie.more_answers_per_arm is None
    assert "any difference is smaller than 5.0 points; too small to decide" in tie.words


def test_about_rounds_up_to_two_significant_figures():
    assert [about(n) for n in (7, 99, 100, 1287, 1300, 98_001)] == [7, 99, 100, 1300, 1300, 99_000]


def test_the_naive_baseline_is_the_pooled_two_proportion_z_test():
    pooled = 1500 / 2000
    z = (0.78 - 0.72) / math.sqrt(pooled * (1 - pooled) * 2 / 1000)
    assert naive_ztest_p_value(Proportion(720, 1000), Proportion(780, 1000)) == pytest.approx(2 * stats.norm.sf(z))


def test_the_wilson_interval_matches_statsmodels_and_its_formula():
    for successes, trials in [(0, 10), (3, 10), (700, 1000), (50, 50)]:
        estimate = rate_summary(Proportion(successes, trials))
        assert (estimate.low, estimate.high) == pytest.approx(proportion_confint(successes, trials, method="wilson"))
        p, z = successes / trials, stats.norm.ppf(0.975)
        centre = (p + z**2 / (2 * trials)) / (1 + z**2 / trials)
        half = z / (1 + z**2 / trials) * math.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2))
        assert (estimate.low, estimate.high) == pytest.approx((centre - half, centre + half))


def test_the_mean_interval_is_students_t():
    values = [1.0, 2.0, 4.0, 8.0, 16.0]
    estimate = mean_summary(Moments.of(values))
    expected = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert (estimate.low, estimate.high) == pytest.approx(expected)
    assert mean_summary(Moments.of([3.0])).high == math.inf


def test_the_p95_interval_covers_the_true_p95_as_often_as_it_promises():
    rng = np.random.default_rng(18)
    true_p95 = -math.log(0.05)  # of an exponential with mean 1
    covered = [(e.low <= true_p95 <= e.high) for e in (quantile_summary(rng.exponential(1.0, 300), 0.95)
                                                       for _ in range(1000))]
    assert np.mean(covered) >= 0.93
    assert quantile_summary(rng.exponential(1.0, 50), 0.95).high == math.inf  # too few for an upper bound


def test_the_p_value_is_one_without_a_difference_and_small_with_a_large_one():
    assert float(msprt_p_value(0.0, 1e-4, tau=0.05)) == 1.0
    assert float(msprt_p_value(0.1, 1e-4, tau=0.05)) < 1e-6
    result = msprt(Proportion(700, 1000), Proportion(800, 1000))
    assert isinstance(result, SequentialResult) and result.low > 0
