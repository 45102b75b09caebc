"""What the dashboard shows, read from the rollups only: a time range cut into bins, per bin the answer
rates, latency percentiles, cost per model, reuse, thumbs, handoffs and low confidence, plus the review
queue's sampled depth. Never reads raw facts, so its cost does not grow with the number of answers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from .rollups import BUCKETS, LATENCY_EDGES_MS


@dataclass(frozen=True)
class Range:
    span: timedelta
    granularity: str  # which rollup rows are read
    step: timedelta  # one chart point


# Each range reads the coarsest rollups that still give it a readable chart (a few dozen to 168 points), so
# it reads rows per point times dimension combinations, never per answer.
RANGES: dict[str, Range] = {
    "hour": Range(timedelta(hours=1), "minute", timedelta(minutes=1)),
    "day": Range(timedelta(days=1), "hour", timedelta(hours=1)),
    "week": Range(timedelta(days=7), "hour", timedelta(hours=1)),
    "30days": Range(timedelta(days=30), "day", timedelta(days=1)),
}
FILTERS = ("language", "prompt_version_id", "arm", "intent")
# date_bin's origin: bins start on whole steps since then, so a bin is the same whenever it is read.
_ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)
# Element-wise sums of the histograms: plain aggregates per array element, far cheaper than unnesting them.
HISTOGRAM_SUMS = ", ".join(
    f"sum({column}[{i}])" for column in ("latency_hist", "ttft_hist") for i in range(1, BUCKETS + 1))
# Gauge samples written by the beat job (services.gauges_sample).
QUEUE_DEPTH = "review_queue_depth"
QUEUE_OLDEST = "review_queue_oldest_seconds"


def percentile(histogram: list[int], q: float) -> float | None:
    """The q-quantile (0..1) of durations counted per LATENCY_EDGES_MS bucket, linear inside its bucket;
    None when nothing was counted. The open last bucket reports its lower edge."""
    total = sum(histogram)
    if not total:
        return None
    rank, seen = q * total, 0
    for index, count in enumerate(histogram):
        if count and seen + count >= rank:
            low = LATENCY_EDGES_MS[index - 1] if index else 0
            if index >= len(LATENCY_EDGES_MS):
                return float(low)
            return low + (LATENCY_EDGES_MS[index] - low) * (rank - seen) / count
        seen += count
    return float(LATENCY_EDGES_MS[-1])


def dashboard_data(*, range_name: str, filters: dict[str, str], now: datetime | None = None) -> dict[str, Any]:
    """The dashboard's whole payload for a range and filters (unknown filter names are ignored)."""
    window = RANGES[range_name]
    until = _bin_start(now or timezone.now(), window.step) + window.step
    since = until - window.span
    where, params = _where(window.granularity, since, until, filters)
    bins = [since + window.step * i for i in range(int(window.span / window.step))]
    sums = _sums(where, params, window.step)
    histograms = _histograms(where, params, window.step)
    cost_per_model = _cost_per_model(where, params, window.step)
    series = _series(bins, sums, histograms, window.step)
    series["cost_per_hour_by_model"] = {
        model or "(reused or offline)": [_per_hour(costs.get(b, 0.0), window.step) for b in bins]
        for model, costs in cost_per_model.items()
    }
    series.update(_gauges(bins, window.step))
    return {
        "range": range_name, "since": since.isoformat(), "until": until.isoformat(),
        "step_seconds": int(window.step.total_seconds()), "bins": [b.isoformat() for b in bins],
        "series": series, "totals": _totals(sums, histograms), "filters": _applied(filters),
        "options": filter_options(granularity=window.granularity, since=since, until=until),
    }


def _bin_start(at: datetime, step: timedelta) -> datetime:
    return at - (at - _ORIGIN) % step


def _applied(filters: dict[str, str]) -> dict[str, str]:
    return {name: str(filters[name]) for name in FILTERS if filters.get(name) not in (None, "")}


def _where(granularity: str, since: datetime, until: datetime, filters: dict[str, str]) -> tuple[str, list[Any]]:
    clauses, params = ["granularity = %s", "bucket >= %s", "bucket < %s"], [granularity, since, until]
    for name, value in _applied(filters).items():
        clauses.append(f"{name} = %s")
        params.append(int(value) if name == "prompt_version_id" else value)
    return " AND ".join(clauses), params


_SUM_COLUMNS = ("answers", "failed", "reused_approved", "reused_cache", "low_confidence", "confidence_count",
                "confidence_sum", "cost", "cost_avoided", "thumbs_up", "thumbs_down", "handoffs", "tokens_in",
                "tokens_out")


def _sums(where: str, params: list[Any], step: timedelta) -> dict[datetime, dict[str, float]]:
    columns = ", ".join(f"sum({c})" for c in _SUM_COLUMNS)
    rows = _fetch(f"SELECT date_bin(%s, bucket, %s) AS t, {columns} FROM monitoring_answerrollup "
                  f"WHERE {where} GROUP BY t", [step, _ORIGIN, *params])
    return {row[0]: {c: float(v or 0) for c, v in zip(_SUM_COLUMNS, row[1:], strict=True)} for row in rows}


def _histograms(where: str, params: list[Any], step: timedelta) -> dict[datetime, dict[str, list[int]]]:
    rows = _fetch(f"SELECT date_bin(%s, bucket, %s) AS t, {HISTOGRAM_SUMS} FROM monitoring_answerrollup "
                  f"WHERE {where} GROUP BY t", [step, _ORIGIN, *params])
    return {row[0]: {"latency": [int(n or 0) for n in row[1:BUCKETS + 1]],
                     "ttft": [int(n or 0) for n in row[BUCKETS + 1:]]} for row in rows}


def _cost_per_model(where: str, params: list[Any], step: timedelta) -> dict[str, dict[datetime, float]]:
    rows = _fetch(f"SELECT date_bin(%s, bucket, %s) AS t, model, sum(cost) FROM monitoring_answerrollup "
                  f"WHERE {where} AND cost > 0 GROUP BY t, model", [step, _ORIGIN, *params])
    out: dict[str, dict[datetime, float]] = {}
    for t, model, cost in rows:
        out.setdefault(model, {})[t] = float(cost)
    return out


def _fetch(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _series(bins: list[datetime], sums: dict[datetime, dict[str, float]],
            histograms: dict[datetime, dict[str, list[int]]], step: timedelta) -> dict[str, Any]:
    minutes = step.total_seconds() / 60
    series: dict[str, list[float | None]] = {name: [] for name in (
        "answers_per_minute", "ttft_p50_ms", "ttft_p95_ms", "latency_p50_ms", "latency_p95_ms", "reuse_rate",
        "cost_avoided", "thumbs_up", "thumbs_down", "handoff_rate", "low_confidence_share", "error_rate")}
    for b in bins:
        s, h = sums.get(b, {}), histograms.get(b, {})
        answers = s.get("answers", 0.0)
        series["answers_per_minute"].append(answers / minutes)
        for kind in ("ttft", "latency"):
            series[f"{kind}_p50_ms"].append(_rounded(percentile(h.get(kind, []), 0.5)))
            series[f"{kind}_p95_ms"].append(_rounded(percentile(h.get(kind, []), 0.95)))
        series["reuse_rate"].append(_ratio(s.get("reused_approved", 0) + s.get("reused_cache", 0), answers))
        series["cost_avoided"].append(s.get("cost_avoided", 0.0))
        series["thumbs_up"].append(s.get("thumbs_up", 0.0))
        series["thumbs_down"].append(s.get("thumbs_down", 0.0))
        series["handoff_rate"].append(_ratio(s.get("handoffs", 0), answers))
        series["low_confidence_share"].append(_ratio(s.get("low_confidence", 0), s.get("confidence_count", 0)))
        series["error_rate"].append(_ratio(s.get("failed", 0), answers))
    return series


def _totals(sums: dict[datetime, dict[str, float]], histograms: dict[datetime, dict[str, list[int]]]
            ) -> dict[str, float | None]:
    total = {c: sum(s.get(c, 0.0) for s in sums.values()) for c in _SUM_COLUMNS}
    merged = {kind: [sum(col) for col in zip(*(h[kind] for h in histograms.values()), strict=True)]
              if histograms else [] for kind in ("latency", "ttft")}
    answers = total["answers"]
    return {
        "answers": answers, "cost": total["cost"], "cost_avoided": total["cost_avoided"],
        "reuse_rate": _ratio(total["reused_approved"] + total["reused_cache"], answers),
        "thumbs_up": total["thumbs_up"], "thumbs_down": total["thumbs_down"],
        "handoff_rate": _ratio(total["handoffs"], answers), "error_rate": _ratio(total["failed"], answers),
        "low_confidence_share": _ratio(total["low_confidence"], total["confidence_count"]),
        "mean_confidence": _ratio(total["confidence_sum"], total["confidence_count"]),
        "latency_p50_ms": _rounded(percentile(merged["latency"], 0.5)),
        "latency_p95_ms": _rounded(percentile(merged["latency"], 0.95)),
        "ttft_p50_ms": _rounded(percentile(merged["ttft"], 0.5)),
        "ttft_p95_ms": _rounded(percentile(merged["ttft"], 0.95)),
    }


def _gauges(bins: list[datetime], step: timedelta) -> dict[str, list[float | None]]:
    """Review queue depth and oldest wait per bin: the highest sample in it (a sampled level, not a sum)."""
    since, until = bins[0], bins[-1] + step
    rows = _fetch("SELECT date_bin(%s, at, %s) AS t, name, max(value) FROM monitoring_gaugesample "
                  "WHERE at >= %s AND at < %s AND name IN (%s, %s) GROUP BY t, name",
                  [step, _ORIGIN, since, until, QUEUE_DEPTH, QUEUE_OLDEST])
    values = {(t, name): v for t, name, v in rows}
    return {
        "review_queue_depth": [values.get((b, QUEUE_DEPTH)) for b in bins],
        "review_queue_oldest_minutes": [_minutes(values.get((b, QUEUE_OLDEST))) for b in bins],
    }


def filter_options(*, granularity: str, since: datetime, until: datetime) -> dict[str, list[str]]:
    """Values each filter can take in the range; a filter with one value or none has nothing to choose and
    the page hides it."""
    names = ", ".join(FILTERS)
    rows = _fetch(f"SELECT DISTINCT {names} FROM monitoring_answerrollup WHERE granularity = %s "
                  "AND bucket >= %s AND bucket < %s", [granularity, since, until])
    options: dict[str, set[str]] = {name: set() for name in FILTERS}
    for row in rows:
        for name, value in zip(FILTERS, row, strict=True):
            if value not in ("", 0):
                options[name].add(str(value))
    return {name: sorted(values) for name, values in options.items()}


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


def _per_hour(cost: float, step: timedelta) -> float:
    return cost * 3600 / step.total_seconds()
