"""Anomalies against a seasonal baseline: on a synthetic traffic series with a weekly rhythm (quiet nights,
busy weekdays, a Monday-morning peak), a spike at 3 am is flagged and the usual Monday peak is not; the beat
job reads the real hourly rollups and raises, then clears, an alert."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from monitoring.anomaly import HOUR, WEEK, anomalies_check, anomalies_find, is_anomalous, seasonal_score
from monitoring.models import AnswerRollup
from monitoring.models_alerts import Alert

MONDAY = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday, 00:00 UTC
WEEKS = 6


def usual_rate(at: datetime) -> float:
    """Answers per minute an assistant like this sees: almost nothing at night, steady on weekday afternoons,
    a peak on Monday mornings, less at weekends."""
    hour, weekday = at.hour, at.weekday()
    if hour < 6:
        rate = 0.5
    elif weekday == 0 and 8 <= hour < 12:
        rate = 40.0
    else:
        rate = 12.0
    return rate * (0.4 if weekday >= 5 else 1.0)


def traffic(*, weeks: int = WEEKS, seed: int = 7, noise: float = 0.08) -> list[tuple[datetime, float]]:
    rng = random.Random(seed)
    hours = [MONDAY + i * HOUR for i in range(weeks * 7 * 24)]
    return [(at, usual_rate(at) * (1 + rng.gauss(0, noise))) for at in hours]


def replaced(points: list[tuple[datetime, float]], at: datetime, value: float) -> list[tuple[datetime, float]]:
    return [(t, value if t == at else v) for t, v in points]


LAST_WEEK = MONDAY + (WEEKS - 1) * WEEK
WEDNESDAY_3AM = LAST_WEEK + timedelta(days=2, hours=3)
MONDAY_10AM = LAST_WEEK + timedelta(hours=10)


def test_a_3am_spike_is_flagged_and_the_monday_morning_peak_is_not():
    points = replaced(traffic(), WEDNESDAY_3AM, 6.0)  # a dozen times the usual night

    flagged = anomalies_find(points, since=LAST_WEEK, threshold=6.0)

    assert [s.at for s in flagged] == [WEDNESDAY_3AM]
    peak = seasonal_score(points, at=MONDAY_10AM)
    assert peak is not None and peak.value > 3 * flagged[0].value and abs(peak.score) < 3


def test_the_same_peak_at_an_unusual_hour_is_flagged():
    points = replaced(traffic(), LAST_WEEK + timedelta(days=3, hours=10), 40.0)  # a Thursday, not a Monday

    assert [s.at for s in anomalies_find(points, since=LAST_WEEK, threshold=6.0)] == [
        LAST_WEEK + timedelta(days=3, hours=10)]


def test_a_flat_series_does_not_turn_noise_into_alerts():
    rng = random.Random(1)
    flat = [(MONDAY + i * HOUR, 5.0 + rng.uniform(-0.001, 0.001)) for i in range(4 * 7 * 24)]
    at = flat[-1][0]

    assert not is_anomalous(seasonal_score(replaced(flat, at, 5.3), at=at), threshold=6.0)
    assert is_anomalous(seasonal_score(replaced(flat, at, 9.0), at=at), threshold=6.0)


def test_too_little_history_gives_no_verdict():
    points = traffic(weeks=3)
    assert seasonal_score(points, at=points[-1][0], min_weeks=3) is None
    assert seasonal_score(points, at=points[-1][0], min_weeks=2) is not None


def test_hours_without_answers_count_as_zero_for_counts_and_as_unknown_for_rates():
    quiet_nights = [(at, v) for at, v in traffic() if at.hour >= 6]  # no answers at all before 6 am
    at = WEDNESDAY_3AM
    busy_night = [*quiet_nights, (at, 3.0)]

    assert is_anomalous(seasonal_score(busy_night, at=at, missing=0.0, absolute_floor=0.1), threshold=6.0)
    assert seasonal_score(busy_night, at=at, missing=None) is None  # a rate of no answers is no history


def test_a_drop_in_a_busy_hour_counts_only_when_asked():
    points = replaced(traffic(), MONDAY_10AM, 0.0)
    score = seasonal_score(points, at=MONDAY_10AM)

    assert is_anomalous(score, threshold=6.0, both_ways=True)
    assert not is_anomalous(score, threshold=6.0)


# --- the beat job on the real rollups ---------------------------------------------------------------------

def seed_rollups(*, weeks: int, spike_at: datetime, spike_answers: int, spike_failed: int) -> None:
    """Hour rows as the pipeline's fact writes leave them: answers, failures and cost per hour."""
    rng = random.Random(3)
    rows = []
    for i in range(weeks * 7 * 24):
        at = spike_at - (weeks * 7 * 24 - 1 - i) * HOUR
        answers = round(60 * usual_rate(at) * (1 + rng.gauss(0, 0.08)))
        failed = round(answers * 0.01)
        if at == spike_at:
            answers, failed = spike_answers, spike_failed
        rows.append(AnswerRollup(granularity="hour", bucket=at, answers=answers, failed=failed,
                                 cost=Decimal(answers) * Decimal("0.002")))
    AnswerRollup.objects.bulk_create(rows)


@pytest.mark.django_db
def test_the_job_raises_an_alert_for_a_night_spike_and_clears_it_the_next_quiet_hour(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    seed_rollups(weeks=5, spike_at=WEDNESDAY_3AM, spike_answers=400, spike_failed=120)

    scores = anomalies_check(now=WEDNESDAY_3AM + timedelta(hours=1, minutes=5))

    raised = {a.key: a for a in Alert.objects.filter(status=Alert.Status.OPEN)}
    assert set(raised) == {"anomaly:answers_per_minute", "anomaly:error_rate", "anomaly:cost"}
    assert raised["anomaly:answers_per_minute"].kind == Alert.Kind.ANOMALY
    assert "Unusually high answers per minute" in raised["anomaly:answers_per_minute"].title
    assert raised["anomaly:error_rate"].data["value"] == pytest.approx(0.3)
    assert scores["latency_p95_ms"] is None and scores["thumbs_down_rate"] is not None

    AnswerRollup.objects.create(granularity="hour", bucket=WEDNESDAY_3AM + HOUR, answers=30, failed=0,
                                cost=Decimal("0.06"))
    anomalies_check(now=WEDNESDAY_3AM + timedelta(hours=2, minutes=5))

    assert not Alert.objects.filter(status=Alert.Status.OPEN).exists()
    assert Alert.objects.filter(status=Alert.Status.RESOLVED, resolved_by=None).count() == 3


@pytest.mark.django_db
def test_the_job_stays_quiet_on_an_ordinary_monday_morning(settings):
    seed_rollups(weeks=5, spike_at=MONDAY_10AM, spike_answers=round(60 * usual_rate(MONDAY_10AM)), spike_failed=24)

    anomalies_check(now=MONDAY_10AM + timedelta(hours=1, minutes=5))

    assert not Alert.objects.exists()
