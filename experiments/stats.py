"""Statistics for prompt experiments that stay valid while staff watch the results page.

A repeated fixed-horizon test (a z-test or t-test run at every look) finds a "significant" difference
between two identical arms far more often than its alpha says, because every look is another chance.
The tests here are mixture sequential probability ratio tests (mSPRT; Johari, Koomen, Pekelis & Walsh,
"Always valid inference: continuous monitoring of A/B tests", 2022): the likelihood ratio of "the
difference is theta" against "it is 0", averaged over a normal prior theta ~ N(0, tau^2), is a
martingale under the null, so by Ville's inequality it exceeds 1/alpha at ANY time with probability at
most alpha. Its p-value and confidence sequence can therefore be read after every answer, and the
experiment stopped at any time.

The estimate (arm minus control, a difference of rates or of means) is taken as normal with variance
V = var_control / n_control + var_arm / n_arm (central limit theorem), which is why nothing is decided
before `MIN_ANSWERS` answers per arm.

Choosing tau (the prior's spread, in the metric's units): the test is most sensitive when tau is close
to the effect it should find. For an effect d the evidence crosses 1/alpha near z = d / sqrt(V) ~ 3,
where tau^2 / V = d^2 / V ~ 9, and that ratio is within a few percent of the one that minimises the
z needed to cross (about 8 at alpha = 0.05). So tau is set to the smallest difference worth acting
on, fixed before the experiment starts (a tau taken from the data would void the guarantee): a
smaller tau is slow to confirm large effects, a larger one needs more answers for small ones. Its
default for rates is `DEFAULT_TAU`; means (cost, latency) have no default because their units vary.

Everything here is a pure function of counts and moments (what SQL's Count/Avg/Variance return), so
the models and admin built on it decide where the numbers come from and what to do with a verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, stats
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

ALPHA = 0.05
# Rates: the smallest change in thumbs-up rate worth a decision (5 points).
DEFAULT_TAU = 0.05
# The normal approximation behind every test is poor on a few dozen answers: nothing is decided before.
MIN_ANSWERS = 100
# "More answers needed" beyond this is reported as no estimate: the difference is too small to matter.
MAX_PROJECTION = 10_000_000

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class Proportion:
    """`successes` of `trials` answers (thumbs up, handoffs, answers slower than a threshold...)."""

    successes: int
    trials: int

    @property
    def rate(self) -> float:
        return self.successes / self.trials if self.trials else math.nan


@dataclass(frozen=True)
class Moments:
    """A per-answer metric (cost, latency) summarised as SQL aggregates it: Count, Avg, Variance."""

    count: int
    mean: float
    variance: float  # sample variance (n - 1 in the denominator)

    @classmethod
    def of(cls, values: ArrayLike) -> Moments:
        data = np.asarray(values, dtype=float)
        variance = float(data.var(ddof=1)) if data.size > 1 else math.nan
        return cls(int(data.size), float(data.mean()) if data.size else math.nan, variance)


Sample = Proportion | Moments


@dataclass(frozen=True)
class Estimate:
    """A value with a confidence interval (`low`, `high`); a bound the data cannot give is infinite."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class SequentialResult:
    """Arm minus control: the always-valid p-value (for "the difference is 0") and confidence sequence."""

    difference: float
    p_value: float
    low: float
    high: float


class Verdict(StrEnum):
    WINNING = "winning"
    LOSING = "losing"
    UNDECIDED = "undecided"


@dataclass(frozen=True)
class ArmVerdict:
    """One arm against control on the primary metric, and how far from a decision it is."""

    verdict: Verdict
    result: SequentialResult
    # Per arm, None once decided or when no practical number of answers would decide it.
    more_answers_per_arm: int | None
    # The difference the estimate assumes (the observed one, or the smallest one worth acting on).
    assumed_effect: float
    mde: float
    in_points: bool  # a difference of rates, shown in percentage points

    @property
    def words(self) -> str:
        return _verdict_words(self)


@dataclass(frozen=True)
class Guardrail:
    """A metric an arm must not make worse. `tau` and `margin` are in the metric's units; a difference
    within `margin` of control is tolerated."""

    metric: str
    tau: float
    lower_is_better: bool = True
    margin: float = 0.0


@dataclass(frozen=True)
class GuardrailResult:
    metric: str
    worse: bool
    # Always-valid, one-sided: for "the arm is no worse than control by more than the margin".
    p_value: float
    difference: float  # arm minus control
    # With confidence 1 - alpha at every look, the arm is worse than control by at least this much.
    worse_by_at_least: float


# The guardrails staff pick from; each is lower-is-better. Latency p95 is tested as the share of answers
# slower than a threshold fixed when the experiment starts (control's p95 before it, or the SLO): an
# arm's p95 is above that threshold exactly when more than 5% of its answers are, so a one-sided test
# on that share is an always-valid test on the quantile, which a mean of latencies is not.
GUARDRAIL_KINDS: dict[str, type[Proportion] | type[Moments]] = {
    "cost_per_answer": Moments,
    "latency_p95": Proportion,
    "handoff_rate": Proportion,
    "thumbs_down_rate": Proportion,
}


# The normal-mixture core works on numpy arrays as well as on floats, so a benchmark can run
# thousands of simulated experiments through the very code the results page uses.


def proportion_difference(
    control_successes: ArrayLike, control_trials: ArrayLike, arm_successes: ArrayLike, arm_trials: ArrayLike
) -> tuple[Floats, Floats]:
    """Arm rate minus control rate, and the variance of that difference. Trials must be positive."""
    control_rate = np.asarray(control_successes, float) / np.asarray(control_trials, float)
    arm_rate = np.asarray(arm_successes, float) / np.asarray(arm_trials, float)
    variance = _rate_variance(control_successes, control_trials) + _rate_variance(arm_successes, arm_trials)
    return arm_rate - control_rate, variance


def _rate_variance(successes: ArrayLike, trials: ArrayLike) -> Floats:
    # A rate of 0 or 1 would give a variance of 0 and so infinite evidence from a handful of answers;
    # one pseudo-success and one pseudo-failure (Laplace) keep it positive and barely move it later on.
    n = np.asarray(trials, float)
    smoothed = (np.asarray(successes, float) + 1) / (n + 2)
    return smoothed * (1 - smoothed) / n


def msprt_log_ratio(difference: ArrayLike, variance: ArrayLike, *, tau: float) -> Floats:
    """log of the two-sided mixture likelihood ratio for "the difference is 0"."""
    d, v = np.asarray(difference, float), _positive(variance)
    t2 = tau**2
    return 0.5 * np.log(v / (v + t2)) + d**2 * t2 / (2 * v * (v + t2))


def msprt_p_value(difference: ArrayLike, variance: ArrayLike, *, tau: float) -> Floats:
    """Always-valid two-sided p-value at this look: 1 / likelihood ratio, at most 1. Its running
    minimum over looks is valid too; stopping at the first look where it is <= alpha keeps alpha."""
    return np.minimum(1.0, np.exp(-msprt_log_ratio(difference, variance, tau=tau)))


def msprt_half_width(variance: ArrayLike, *, tau: float, alpha: float = ALPHA) -> Floats:
    """Half-width of the always-valid 1 - alpha confidence sequence: the differences the test at this
    look would not reject (so 0 lies outside it exactly when the p-value is below alpha)."""
    v, t2 = _positive(variance), tau**2
    return np.sqrt(2 * v * (v + t2) / t2 * (math.log(1 / alpha) + 0.5 * np.log((v + t2) / v)))


def one_sided_log_ratio(excess: ArrayLike, variance: ArrayLike, *, tau: float) -> Floats:
    """log of the mixture likelihood ratio over positive differences only (a half-normal prior), for
    "the difference is <= 0". Under any difference <= 0 it is a supermartingale, so the same
    1/alpha bound holds; being spent on one direction only, it decides sooner than the two-sided one."""
    d, v = np.asarray(excess, float), _positive(variance)
    t2 = tau**2
    shift = d * tau / np.sqrt(v * (v + t2))
    return math.log(2) + msprt_log_ratio(d, v, tau=tau) + stats.norm.logcdf(shift)


def _positive(variance: ArrayLike) -> Floats:
    # Identical values in both arms give a variance of 0; the smallest float keeps the logs finite.
    return np.maximum(np.asarray(variance, float), np.finfo(float).tiny)


# Results for one arm against control, as the results page shows them.


def msprt(control: Sample, arm: Sample, *, tau: float = DEFAULT_TAU, alpha: float = ALPHA) -> SequentialResult:
    """The two-sided always-valid test of arm against control, on rates or on means."""
    difference, variance = _difference(control, arm)
    if math.isnan(variance):
        return SequentialResult(difference, 1.0, -math.inf, math.inf)
    width = float(msprt_half_width(variance, tau=tau, alpha=alpha))
    p_value = float(msprt_p_value(difference, variance, tau=tau))
    return SequentialResult(difference, p_value, difference - width, difference + width)


def sequential_update(previous: SequentialResult | None, current: SequentialResult) -> SequentialResult:
    """The result over every look so far: the smallest p-value and the intersection of the confidence
    sequences, both still valid, so a decision once reached does not flip back with noise."""
    if previous is None:
        return current
    low, high = max(previous.low, current.low), min(previous.high, current.high)
    if low > high:  # disjoint only when the normal approximation failed at some look; trust the latest
        low, high = current.low, current.high
    return SequentialResult(current.difference, min(previous.p_value, current.p_value), low, high)


def _difference(control: Sample, arm: Sample) -> tuple[float, float]:
    """Arm minus control and its variance; a NaN variance when either arm is too small to say."""
    (control_mean, control_var, control_n), (arm_mean, arm_var, arm_n) = _per_answer(control), _per_answer(arm)
    if min(control_n, arm_n) < 2 or math.isnan(control_var + arm_var):
        return arm_mean - control_mean, math.nan
    return arm_mean - control_mean, control_var / control_n + arm_var / arm_n


def _per_answer(sample: Sample) -> tuple[float, float, int]:
    """Mean, per-answer variance and count, whichever kind of metric it is."""
    if isinstance(sample, Proportion):
        if sample.trials == 0:
            return math.nan, math.nan, 0
        per_answer = float(_rate_variance(sample.successes, sample.trials)) * sample.trials
        return sample.rate, per_answer, sample.trials
    return sample.mean, sample.variance, sample.count


def _count(sample: Sample) -> int:
    return sample.trials if isinstance(sample, Proportion) else sample.count


# The verdict in words, and how many more answers a decision needs.


def arm_verdict(
    control: Sample,
    arm: Sample,
    *,
    tau: float = DEFAULT_TAU,
    alpha: float = ALPHA,
    higher_is_better: bool = True,
    mde: float | None = None,
    previous: SequentialResult | None = None,
    min_answers: int = MIN_ANSWERS,
) -> ArmVerdict:
    """Winning, losing or undecided on the primary metric, with the answers a decision still needs.

    `mde` (default: tau) is the smallest difference worth acting on; `previous` is the result of the
    last look, so that a decision stays made."""
    mde = tau if mde is None else mde
    result = sequential_update(previous, msprt(control, arm, tau=tau, alpha=alpha))
    fewest = min(_count(control), _count(arm))
    verdict = _verdict(result, alpha, higher_is_better) if fewest >= min_answers else Verdict.UNDECIDED
    in_points = isinstance(arm, Proportion)
    if verdict != Verdict.UNDECIDED:
        return ArmVerdict(verdict, result, None, abs(result.difference), mde, in_points)
    more, assumed = _more_answers(control, arm, result, mde=mde, tau=tau, alpha=alpha)
    if more is not None:
        more = max(more, min_answers - fewest)
    return ArmVerdict(verdict, result, more, assumed, mde, in_points)


def _verdict(result: SequentialResult, alpha: float, higher_is_better: bool) -> Verdict:
    if result.p_value > alpha:
        return Verdict.UNDECIDED
    # The side of 0 the confidence sequence lies on, not the latest difference: after a decision, noise
    # can swing the latest difference across 0 while the sequence over all looks stays on one side.
    better = (result.low + result.high > 0) == higher_is_better
    return Verdict.WINNING if better else Verdict.LOSING


def _more_answers(
    control: Sample, arm: Sample, result: SequentialResult, *, mde: float, tau: float, alpha: float
) -> tuple[int | None, float]:
    """More answers per arm needed, and the difference assumed: the observed one when it is at least
    the MDE or when the confidence sequence already rules the MDE out; otherwise the MDE, unless a
    difference that large would typically have been decided by now, which leaves the observed one."""
    observed = abs(result.difference)
    ruled_out = -mde < result.low and result.high < mde
    for effect in [observed] if observed >= mde or ruled_out else [mde, observed]:
        more = answers_to_decision(control, arm, effect, tau=tau, alpha=alpha)
        if more != 0:
            return more, effect
    return 0, observed


def answers_to_decision(
    control: Sample, arm: Sample, effect: float, *, tau: float = DEFAULT_TAU, alpha: float = ALPHA
) -> int | None:
    """About how many more answers per arm until the test decides, if the true difference is `effect`.

    Assumes both arms get the same number of further answers, their per-answer variances stay what
    they are, and the estimate sits exactly at `effect` from now on: it is where that smooth path
    crosses the boundary. A real, noisy path usually touches the boundary somewhat before its mean
    does, so with `effect` right this errs on the high side; but an observed difference that has only
    just become large is usually an overestimate, which errs the other way. None when `effect` is 0
    or the answer would exceed MAX_PROJECTION."""
    (_, control_var, control_n), (_, arm_var, arm_n) = _per_answer(control), _per_answer(arm)
    if effect == 0 or math.isnan(control_var + arm_var):
        return None

    def evidence(more: float) -> float:
        variance = control_var / (control_n + more) + arm_var / (arm_n + more)
        return float(msprt_log_ratio(effect, variance, tau=tau)) - math.log(1 / alpha)

    if evidence(0) >= 0:
        return 0
    if evidence(MAX_PROJECTION) < 0:
        return None
    return math.ceil(optimize.brentq(evidence, 0, MAX_PROJECTION, xtol=0.5))


def about(n: int) -> int:
    """`n` rounded up to two significant figures: "about 1,300", not a false "1,287"."""
    if n < 100:
        return n
    step = 10 ** (len(str(n)) - 2)
    return -(-n // step) * step


def _verdict_words(v: ArmVerdict) -> str:
    r = v.result
    interval = f"95% always-valid interval {_signed(r.low, v)} to {_signed(r.high, v)}"
    if v.verdict != Verdict.UNDECIDED:
        return f"{v.verdict.value}: {_signed(r.difference, v)} against control ({interval})"
    observed = f"undecided: {_signed(r.difference, v)} against control ({interval})"
    if -v.mde < r.low and r.high < v.mde:
        observed += f"; any difference is smaller than {_unsigned(v.mde, v)}"
    if v.more_answers_per_arm is None:
        return f"{observed}; too small to decide"
    why = "if the difference stays" if v.assumed_effect != v.mde else "to detect a difference of"
    more = f"about {about(v.more_answers_per_arm):,} more answers per arm needed"
    return f"{observed}; {more} {why} {_unsigned(v.assumed_effect, v)}"


def _signed(x: float, v: ArmVerdict) -> str:
    if math.isinf(x):
        return "-inf" if x < 0 else "+inf"
    return f"{x * 100:+.1f} points" if v.in_points else f"{x:+.4g}"


def _unsigned(x: float, v: ArmVerdict) -> str:
    return f"{x * 100:.1f} points" if v.in_points else f"{x:.4g}"


# Guardrails: one-sided, always valid.


def guardrail_check(
    guardrail: Guardrail, control: Sample, arm: Sample, *, alpha: float = ALPHA, min_answers: int = MIN_ANSWERS
) -> GuardrailResult:
    """Is the arm significantly worse than control on this guardrail (beyond its margin)? Safe to run
    at every look: the chance of ever flagging an arm that is no worse stays below alpha."""
    difference, variance = _difference(control, arm)
    sign = 1.0 if guardrail.lower_is_better else -1.0
    if math.isnan(variance) or min(_count(control), _count(arm)) < min_answers:
        return GuardrailResult(guardrail.metric, False, 1.0, difference, -math.inf)
    excess = sign * difference - guardrail.margin
    log_ratio = float(one_sided_log_ratio(excess, variance, tau=guardrail.tau))
    p_value = min(1.0, math.exp(-log_ratio))
    bound = sign * difference - _one_sided_width(variance, guardrail.tau, alpha)
    return GuardrailResult(guardrail.metric, p_value <= alpha, p_value, difference, bound)


def _one_sided_width(variance: float, tau: float, alpha: float) -> float:
    """How far below the observed excess the one-sided confidence bound lies (the ratio grows with the
    excess, so the excess at which it reaches 1/alpha is unique)."""

    def evidence(excess: float) -> float:
        return float(one_sided_log_ratio(excess, variance, tau=tau)) - math.log(1 / alpha)

    upper = float(msprt_half_width(variance, tau=tau, alpha=alpha))  # the two-sided width is never smaller
    return float(optimize.brentq(evidence, 0.0, upper))


def share_over(values: ArrayLike, threshold: float) -> Proportion:
    """Answers slower (costlier...) than `threshold`: the proportion the latency p95 guardrail tests."""
    data = np.asarray(values, dtype=float)
    return Proportion(int((data > threshold).sum()), int(data.size))


# The naive baseline, for comparison only.


def naive_ztest_p_value(control: Proportion, arm: Proportion) -> float:
    """NAIVE BASELINE, never a decision rule: the fixed-horizon two-proportion z-test (pooled variance).
    Its p-value is valid at one look planned in advance; read repeatedly, it finds differences between
    identical arms far more often than alpha. Kept to show that in the benchmark."""
    if min(control.trials, arm.trials) == 0 or control.successes + arm.successes in (0, control.trials + arm.trials):
        return 1.0  # no variance to test against
    _, p_value = proportions_ztest([arm.successes, control.successes], [arm.trials, control.trials])
    return float(p_value)


# Per-arm summaries for the results page.


def rate_summary(sample: Proportion, *, confidence: float = 0.95) -> Estimate:
    """A rate with its Wilson interval: unlike the normal (Wald) one it stays inside [0, 1] and keeps
    its coverage for rates near 0 or 1 (handoffs, thumbs down) and for few answers."""
    if sample.trials == 0:
        return Estimate(math.nan, 0.0, 1.0)
    low, high = proportion_confint(sample.successes, sample.trials, alpha=1 - confidence, method="wilson")
    return Estimate(sample.rate, float(low), float(high))


def mean_summary(sample: Moments, *, confidence: float = 0.95) -> Estimate:
    """A mean with its Student t interval (right for any distribution once there are some dozens of
    answers, by the central limit theorem; cost and latency are skewed, so few answers cover less)."""
    if sample.count < 2 or math.isnan(sample.variance):
        return Estimate(sample.mean, -math.inf, math.inf)
    width = stats.t.ppf(0.5 + confidence / 2, sample.count - 1) * math.sqrt(sample.variance / sample.count)
    return Estimate(sample.mean, sample.mean - float(width), sample.mean + float(width))


def quantile_summary(values: ArrayLike, q: float, *, confidence: float = 0.95) -> Estimate:
    """The q-quantile (p50: 0.5, p95: 0.95) with a distribution-free order-statistic interval.

    The number of answers below the true quantile is Binomial(n, q), so two order statistics picked
    from its tails bracket the quantile with probability >= `confidence` for any continuous
    distribution, without resampling (a bootstrap is random and unreliable in the tails). With too
    few answers a side has no such order statistic and its bound is infinite (a finite upper bound
    on p95 at 95% needs 72 answers)."""
    data = np.sort(np.asarray(values, dtype=float))
    n = data.size
    if n == 0:
        return Estimate(math.nan, -math.inf, math.inf)
    tail = (1 - confidence) / 2
    lower_rank = int(stats.binom.ppf(tail, n, q))  # the 1-based rank: P(Binomial < rank) <= tail
    upper_rank = int(stats.binom.ppf(1 - tail, n, q)) + 1  # P(Binomial >= upper rank) <= tail
    low = float(data[lower_rank - 1]) if lower_rank >= 1 else -math.inf
    high = float(data[upper_rank - 1]) if upper_rank <= n else math.inf
    return Estimate(float(np.quantile(data, q)), low, high)
