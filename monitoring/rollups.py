"""Per-minute, per-hour and per-day aggregates of answers (AnswerRollup), kept by each fact write, and the
series the dashboard and the anomaly job read from them.

Every answer fact, thumbs change and handoff adds to three rows at once, its minute, hour and day, in the
transaction that writes the fact: the rollups agree with the raw facts by construction, and the beat job
only compacts (drops minute rows and raw facts past their retention) and backfills facts written before
rollups existed. Latency and time to first token are histograms over LATENCY_EDGES_MS, so a percentile of
any range is read from summed counts (exact to the bucket, interpolated inside it).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .models import AnswerFact, AnswerRollup

# Upper edges (ms) of the histogram buckets; the last bucket holds everything slower.
LATENCY_EDGES_MS: tuple[int, ...] = (
    5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 4000, 6000, 8000,
    12000, 20000, 30000, 60000,
)
BUCKETS = len(LATENCY_EDGES_MS) + 1
DIMENSIONS = ("language", "prompt_version_id", "arm", "intent", "model")
_SUMS = ("answers", "failed", "reused_approved", "reused_cache", "low_confidence", "confidence_count",
         "confidence_sum", "tokens_in", "tokens_out", "cost", "cost_avoided", "thumbs_up", "thumbs_down",
         "handoffs")


def latency_bucket(ms: int) -> int:
    """Index of the histogram bucket a duration falls in (bucket i holds (edge[i-1], edge[i]])."""
    return bisect.bisect_left(LATENCY_EDGES_MS, ms)


@dataclass(frozen=True)
class Dimensions:
    """What a rollup row is grouped by; the dashboard's filters."""

    language: str = ""
    prompt_version_id: int = 0
    arm: str = ""
    intent: str = ""
    model: str = ""

    @classmethod
    def of(cls, fact: AnswerFact) -> Dimensions:
        return cls(language=fact.language, prompt_version_id=fact.prompt_version_id or 0, arm=fact.arm,
                   intent=fact.intent, model=fact.model)


def answer_counts(fact: AnswerFact) -> dict[str, int | float | Decimal]:
    """What one answer fact adds to its rows (its thumbs are added when they are given)."""
    complete = fact.status == "complete"
    confident = complete and fact.confidence is not None
    return {
        "answers": 1, "failed": int(not complete), "reused_approved": int(fact.reuse == "approved"),
        "reused_cache": int(fact.reuse == "cache"),
        "low_confidence": int(confident and fact.confidence < settings.MONITORING_LOW_CONFIDENCE_BELOW),
        "confidence_count": int(confident), "confidence_sum": (fact.confidence or 0.0) if confident else 0.0,
        "tokens_in": fact.tokens_in, "tokens_out": fact.tokens_out, "cost": fact.cost,
        "cost_avoided": fact.cost_avoided,
    }


def rollup_add(*, at: datetime, dimensions: Dimensions, counts: Mapping[str, int | float | Decimal],
               latency_ms: int | None = None, ttft_ms: int | None = None) -> None:
    """Add to the minute, hour and day rows of `at` (created if missing): one statement, three rows."""
    columns = ", ".join(counts)
    increments = [f"{name} = r.{name} + EXCLUDED.{name}" for name in counts]
    histograms = {"latency_hist": latency_ms, "ttft_hist": ttft_ms}
    for column, ms in histograms.items():
        if ms is not None:  # Postgres arrays count from 1
            increments.append(f"{column}[{latency_bucket(ms) + 1}] = r.{column}[{latency_bucket(ms) + 1}] + 1")
    row = "(" + ", ".join(["%s"] * (2 + len(DIMENSIONS) + 2 + len(counts))) + ")"
    params: list[Any] = []
    for granularity, bucket in _buckets(at):
        params += [granularity, bucket, *_dimension_values(dimensions),
                   *(_one_observation(ms) for ms in histograms.values()), *counts.values()]
    sql = (
        f"INSERT INTO monitoring_answerrollup AS r (granularity, bucket, {', '.join(DIMENSIONS)}, latency_hist,"
        f" ttft_hist, {columns}) VALUES {row}, {row}, {row}"
        f" ON CONFLICT (granularity, bucket, {', '.join(DIMENSIONS)}) DO UPDATE SET {', '.join(increments)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _one_observation(ms: int | None) -> list[int]:
    """The histogram of a row created by this observation (all zeros when there is none to count)."""
    counts = [0] * BUCKETS
    if ms is not None:
        counts[latency_bucket(ms)] = 1
    return counts


def _dimension_values(dimensions: Dimensions) -> list[object]:
    return [getattr(dimensions, name) for name in DIMENSIONS]


def _minute(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(second=0, microsecond=0)


def _buckets(at: datetime) -> tuple[tuple[str, datetime], ...]:
    hour = _hour(at)
    return ("minute", _minute(at)), ("hour", hour), ("day", _day(at))


def _hour(at: datetime) -> datetime:
    # UTC first: in a zone with a half-hour offset the local hour would straddle two UTC hours
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _day(at: datetime) -> datetime:
    return _hour(at).replace(hour=0)


def _bucket_case(column: str) -> str:
    """SQL for latency_bucket(column): the same bucket index the live path computes in Python."""
    arms = " ".join(f"WHEN {column} <= {edge} THEN {i}" for i, edge in enumerate(LATENCY_EDGES_MS))
    return f"CASE {arms} ELSE {len(LATENCY_EDGES_MS)} END"


def _histogram_sql(column: str) -> str:
    index = _bucket_case(column)
    return "ARRAY[" + ", ".join(
        f"count(*) FILTER (WHERE {column} IS NOT NULL AND {index} = {i})" for i in range(BUCKETS)) + "]::int[]"


def rollups_rebuild(*, since: datetime, until: datetime, through_today: bool = False) -> None:
    """Recompute the rollups of whole days in [since, until) up to yesterday from the raw facts: for facts
    written before rollups existed, or loaded in bulk. Days whose raw facts were compacted lose their counts:
    only rebuild ranges the raw facts still cover. `through_today`: today too, where nothing answers (a bulk
    load, a benchmark, a test)."""
    # Never today: live answers upsert today's rows, and deleting them here would hold those writes (and the
    # visitors' `end` frames) for the whole rebuild.
    until = _day(until) + (timedelta(days=1) if until != _day(until) else timedelta())
    since, until = _day(since), until if through_today else min(until, _day(timezone.now()))
    if since >= until:
        return
    dims = ", ".join(DIMENSIONS)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM monitoring_answerrollup WHERE bucket >= %s AND bucket < %s", [since, until])
        for granularity in ("minute", "hour", "day"):
            cursor.execute(_rebuild_answers_sql(granularity, dims), [
                settings.MONITORING_LOW_CONFIDENCE_BELOW, since, until])
            cursor.execute(_rebuild_handoffs_sql(granularity, dims), [since, until])


def _rebuild_answers_sql(granularity: str, dims: str) -> str:
    return f"""
        INSERT INTO monitoring_answerrollup (granularity, bucket, {dims}, answers, failed, reused_approved,
            reused_cache, low_confidence, confidence_count, confidence_sum, tokens_in, tokens_out, cost,
            cost_avoided, thumbs_up, thumbs_down, handoffs, latency_hist, ttft_hist)
        SELECT '{granularity}', date_trunc('{granularity}', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
            language, coalesce(prompt_version_id, 0), arm, intent, model, count(*),
            count(*) FILTER (WHERE status <> 'complete'), count(*) FILTER (WHERE reuse = 'approved'),
            count(*) FILTER (WHERE reuse = 'cache'),
            count(*) FILTER (WHERE status = 'complete' AND confidence < %s),
            count(*) FILTER (WHERE status = 'complete' AND confidence IS NOT NULL),
            coalesce(sum(confidence) FILTER (WHERE status = 'complete'), 0), sum(tokens_in), sum(tokens_out),
            sum(cost), sum(cost_avoided), count(*) FILTER (WHERE feedback = 'up'),
            count(*) FILTER (WHERE feedback = 'down'), 0, {_histogram_sql('latency_ms')}, {_histogram_sql('ttft_ms')}
        FROM monitoring_answerfact WHERE created_at >= %s AND created_at < %s
        GROUP BY 2, {dims.replace('prompt_version_id', 'coalesce(prompt_version_id, 0)')}"""


def _rebuild_handoffs_sql(granularity: str, dims: str) -> str:
    """Handoffs under the dimensions of the conversation's last answer before them, as handoff_fact_open does."""
    zeros = "'{" + ",".join(["0"] * BUCKETS) + "}'::int[]"
    return f"""
        INSERT INTO monitoring_answerrollup AS r (granularity, bucket, {dims}, handoffs, latency_hist, ttft_hist)
        SELECT '{granularity}', date_trunc('{granularity}', h.requested_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
            coalesce(a.language, ''), coalesce(a.prompt_version_id, h.prompt_version_id, 0), coalesce(a.arm, ''),
            coalesce(a.intent, ''), coalesce(a.model, ''), count(*), {zeros}, {zeros}
        FROM monitoring_handofffact h LEFT JOIN LATERAL (
            SELECT language, prompt_version_id, arm, intent, model FROM monitoring_answerfact f
            WHERE f.conversation_id = h.conversation_id AND f.created_at <= h.requested_at
            ORDER BY f.created_at DESC LIMIT 1) a ON true
        WHERE h.requested_at >= %s AND h.requested_at < %s
        GROUP BY 2, 3, 4, 5, 6, 7
        ON CONFLICT (granularity, bucket, {dims}) DO UPDATE SET handoffs = r.handoffs + EXCLUDED.handoffs"""


def facts_compact(*, now: datetime | None = None) -> dict[str, int]:
    """Drop raw answer facts past MONITORING_RAW_FACT_DAYS and minute rollups past
    MONITORING_MINUTE_ROLLUP_DAYS; hour and day rollups stay. Returns what was deleted."""
    now = now or timezone.now()
    facts, _ = AnswerFact.objects.filter(
        created_at__lt=now - timedelta(days=settings.MONITORING_RAW_FACT_DAYS)).delete()
    minutes, _ = AnswerRollup.objects.filter(
        granularity=AnswerRollup.Granularity.MINUTE,
        bucket__lt=now - timedelta(days=settings.MONITORING_MINUTE_ROLLUP_DAYS)).delete()
    return {"facts": facts, "minute_rollups": minutes}


SERIES_METRICS = ("answers_per_minute", "error_rate", "latency_p95_ms", "cost", "thumbs_down_rate")


def series(*, metric: str, since: datetime, until: datetime, granularity: str = "hour"
           ) -> list[tuple[datetime, float]]:
    """One point per bucket in [since, until) that had answers: answers per minute, share failed, latency p95,
    cost, or thumbs-down per answer. What the anomaly job scores."""
    if metric not in SERIES_METRICS:
        raise ValueError(f"unknown series {metric!r}; one of {SERIES_METRICS}")
    from .dashboard import percentile  # the dashboard reads the same histograms

    minutes = {"minute": 1, "hour": 60, "day": 1440}[granularity]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT bucket, sum(answers), sum(failed), sum(cost), sum(thumbs_down) FROM monitoring_answerrollup"
            " WHERE granularity = %s AND bucket >= %s AND bucket < %s GROUP BY bucket HAVING sum(answers) > 0"
            " ORDER BY bucket", [granularity, since, until])
        rows = cursor.fetchall()
        latency = _latency_histograms(cursor, granularity, since, until) if metric == "latency_p95_ms" else {}
    values = {
        "answers_per_minute": lambda r: r[1] / minutes, "error_rate": lambda r: r[2] / r[1],
        "cost": lambda r: float(r[3]), "thumbs_down_rate": lambda r: r[4] / r[1],
        "latency_p95_ms": lambda r: percentile(latency.get(r[0], []), 0.95),
    }[metric]
    points = [(row[0], values(row)) for row in rows]
    return [(at, float(value)) for at, value in points if value is not None]


def _latency_histograms(cursor: Any, granularity: str, since: datetime, until: datetime) -> dict[datetime, list[int]]:
    sums = ", ".join(f"sum(latency_hist[{i}])" for i in range(1, BUCKETS + 1))
    cursor.execute(f"SELECT bucket, {sums} FROM monitoring_answerrollup WHERE granularity = %s AND bucket >= %s"
                   " AND bucket < %s GROUP BY bucket", [granularity, since, until])
    return {row[0]: [int(n or 0) for n in row[1:]] for row in cursor.fetchall()}
