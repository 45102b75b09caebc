"""Anomaly detection on the hourly rollup series: each hour is compared with the same hour of the week in
past weeks (a seasonal baseline), by a robust score, so that Monday morning's usual peak is normal and a
3 am spike is not.

The score is (value - median) / scale over the same hour of past weeks, where scale is 1.4826 * MAD (the
normal-consistent median absolute deviation) raised to a floor: a share of the median and an absolute
minimum per series, so that a flat history (MAD near zero) does not turn noise into alerts. An hour is
judged only with ANOMALY_MIN_WEEKS past weeks of history. Hours of the week are UTC hours: where a local
clock changes for daylight saving, the usual peak sits an hour off for the weeks straddling the change.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from . import rollups
from .alerts import alert_clear, alert_raise
from .models_alerts import Alert

WEEK = timedelta(days=7)
HOUR = timedelta(hours=1)
# The normal-consistent scale of a median absolute deviation.
MAD_TO_SIGMA = 1.4826

Point = tuple[datetime, float]


@dataclass(frozen=True)
class SeasonalScore:
    at: datetime
    value: float
    median: float  # of the same hour of the week in past weeks
    scale: float  # robust standard deviation, floored
    score: float  # (value - median) / scale
    weeks: int  # past weeks compared with


def seasonal_score(
    points: Sequence[Point], *, at: datetime, weeks: int = 8, min_weeks: int = 3, missing: float | None = None,
    relative_floor: float = 0.1, absolute_floor: float = 1e-9,
) -> SeasonalScore | None:
    """Score the value at `at` against the values exactly 1..`weeks` weeks earlier. `missing` is the value
    of an hour without a point (0 for counts: no answers; None for rates: unknown, skipped); weeks before
    the series' first point are no history at all. None when the value is unknown or fewer than
    `min_weeks` past weeks are known."""
    by_time = dict(points)
    value = by_time.get(at, missing)
    if value is None or not by_time:
        return None
    first = min(by_time)
    past = [by_time.get(at - k * WEEK, missing) for k in range(1, weeks + 1) if at - k * WEEK >= first]
    history = [v for v in past if v is not None]
    if len(history) < min_weeks:
        return None
    median = statistics.median(history)
    mad = statistics.median(abs(v - median) for v in history)
    scale = max(MAD_TO_SIGMA * mad, relative_floor * abs(median), absolute_floor)
    return SeasonalScore(at=at, value=value, median=median, scale=scale, score=(value - median) / scale,
                         weeks=len(history))


def is_anomalous(score: SeasonalScore | None, *, threshold: float, both_ways: bool = False) -> bool:
    if score is None:
        return False
    return abs(score.score) >= threshold if both_ways else score.score >= threshold


def anomalies_find(
    points: Sequence[Point], *, since: datetime, threshold: float, both_ways: bool = False, weeks: int = 8,
    min_weeks: int = 3, missing: float | None = None, relative_floor: float = 0.1, absolute_floor: float = 1e-9,
) -> list[SeasonalScore]:
    """Every hour from `since` to the last point whose score crosses `threshold` (for reports and tests)."""
    if not points:
        return []
    hours = int((max(at for at, _ in points) - since) / HOUR) + 1
    scores = (seasonal_score(points, at=since + i * HOUR, weeks=weeks, min_weeks=min_weeks, missing=missing,
                             relative_floor=relative_floor, absolute_floor=absolute_floor) for i in range(hours))
    return [s for s in scores if s is not None and is_anomalous(s, threshold=threshold, both_ways=both_ways)]


# --- the beat job ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SeriesRule:
    metric: str  # a rollups.series metric
    label: str
    missing: float | None  # an hour without answers: this value, or unknown
    absolute_floor: float  # the smallest change worth an alert, in the series' unit
    both_ways: bool = False  # a drop is as alarming as a rise
    needs_answers: bool = False  # a rate of a handful of answers is noise: judged on busy hours only


RULES = (
    # answers stopping in a busy hour (the widget or the pipeline broken) is as telling as a flood
    SeriesRule("answers_per_minute", "answers per minute", missing=0.0, absolute_floor=0.1, both_ways=True),
    SeriesRule("error_rate", "error rate", missing=None, absolute_floor=0.02, needs_answers=True),
    SeriesRule("latency_p95_ms", "latency p95 (ms)", missing=None, absolute_floor=250.0, needs_answers=True),
    SeriesRule("cost", "cost per hour (USD)", missing=0.0, absolute_floor=0.05),
    SeriesRule("thumbs_down_rate", "thumbs-down rate", missing=None, absolute_floor=0.03, needs_answers=True),
)


def read_series(*, metric: str, since: datetime, until: datetime) -> list[Point]:
    return rollups.series(metric=metric, since=since, until=until, granularity="hour")


def anomalies_check(*, now: datetime | None = None) -> dict[str, SeasonalScore | None]:
    """Score the last complete hour of each series, raise an alert per anomalous series (key
    `anomaly:<metric>`, so an anomaly lasting hours stays one alert) and clear the others."""
    hour = (now or timezone.now()).astimezone(UTC).replace(minute=0, second=0, microsecond=0) - HOUR
    since, until = hour - settings.ANOMALY_WEEKS * WEEK, hour + HOUR
    answers = read_series(metric="answers_per_minute", since=since, until=until)
    busy = {at for at, per_minute in answers if per_minute * 60 >= settings.ANOMALY_MIN_ANSWERS_PER_HOUR}
    scores: dict[str, SeasonalScore | None] = {}
    for rule in RULES:
        points = answers if rule.metric == "answers_per_minute" else read_series(
            metric=rule.metric, since=since, until=until)
        if rule.needs_answers:
            points = [(at, value) for at, value in points if at in busy]
        scores[rule.metric] = score = _score(rule, points, hour)
        _alert_or_clear(rule, score)
    return scores


def _score(rule: SeriesRule, points: Sequence[Point], hour: datetime) -> SeasonalScore | None:
    return seasonal_score(points, at=hour, weeks=settings.ANOMALY_WEEKS, min_weeks=settings.ANOMALY_MIN_WEEKS,
                          missing=rule.missing, relative_floor=settings.ANOMALY_RELATIVE_FLOOR,
                          absolute_floor=rule.absolute_floor)


def _alert_or_clear(rule: SeriesRule, score: SeasonalScore | None) -> None:
    key = f"anomaly:{rule.metric}"
    if score is None:  # too little history, or a quiet hour for a rate: no verdict either way
        return
    if not is_anomalous(score, threshold=settings.ANOMALY_THRESHOLD, both_ways=rule.both_ways):
        alert_clear(key=key)
        return
    direction = "high" if score.score > 0 else "low"
    alert_raise(
        key=key, kind=Alert.Kind.ANOMALY, severity=Alert.Severity.WARNING,
        title=f"Unusually {direction} {rule.label}: {score.value:.3g} (usually {score.median:.3g})",
        detail=(f"{rule.label} in the hour from {score.at:%a %Y-%m-%d %H:%M} UTC was {score.value:.3g}; the same "
                f"hour in the past {score.weeks} weeks had a median of {score.median:.3g} "
                f"(robust score {score.score:+.1f}, alert at ±{settings.ANOMALY_THRESHOLD:g})."),
        data={"metric": rule.metric, "hour": score.at.isoformat(), "value": score.value, "median": score.median,
              "scale": score.scale, "score": round(score.score, 2), "weeks": score.weeks})
