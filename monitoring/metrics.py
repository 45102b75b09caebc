"""Prometheus metrics (prometheus_client). With several processes (ASGI workers, the Celery worker) each
writes to files under PROMETHEUS_MULTIPROC_DIR, which `make run` sets and empties at start, and `/metrics`
adds them up; without it (tests, one process) the default registry is read.

Answers are counted where their monitoring fact is written, so every entry point (websocket, REST,
benchmarks) is measured once."""

from __future__ import annotations

import os
from decimal import Decimal

from django.apps import apps
from django.utils import timezone
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as multiprocess_collector

# Seconds; answers take from milliseconds (reused) to tens of seconds (a long generation).
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)

ANSWERS = Counter("spotter_answers", "Answers by outcome and reuse kind", ["outcome", "reuse"])
TTFT = Histogram("spotter_answer_ttft_seconds", "Time to an answer's first token", buckets=_LATENCY_BUCKETS)
LATENCY = Histogram("spotter_answer_latency_seconds", "Time to an answer's end", buckets=_LATENCY_BUCKETS)
TOKENS = Counter("spotter_llm_tokens", "Tokens sent to and received from the LLM", ["model", "direction"])
COST = Counter("spotter_llm_cost_usd", "What answers cost, by model", ["model"])
COST_AVOIDED = Counter("spotter_cost_avoided_usd", "What reused answers would have cost")
LLM_CALLS = Counter("spotter_llm_calls", "Calls to the LLM gateway by outcome", ["model", "outcome"])
LLM_RETRIES = Counter("spotter_llm_retries", "Retried LLM calls", ["model"])
WEBSOCKETS = Gauge("spotter_websocket_connections", "Open chat websockets", multiprocess_mode="livesum")
TASKS = Counter("spotter_celery_tasks", "Celery tasks by name and outcome", ["task", "outcome"])
HANDOFFS = Counter("spotter_handoffs", "Requests for a person by reason", ["reason"])
BREAKER_OPEN = Gauge("spotter_llm_breaker_open", "1 while a process's LLM circuit breaker is open",
                     multiprocess_mode="livemax")
# Read from the database when scraped (one process sets them): what waits for trainers.
QUEUE_DEPTH = Gauge("spotter_review_queue_depth", "Review items waiting or claimed", multiprocess_mode="mostrecent")
QUEUE_OLDEST = Gauge("spotter_review_queue_oldest_seconds", "How long the oldest waiting review item has waited",
                     multiprocess_mode="mostrecent")


def review_queue_state() -> tuple[int, float]:
    """(items waiting or claimed, seconds the oldest waiting one has waited). Review's table read by name:
    monitoring imports no other app."""
    items = apps.get_model("review", "ReviewItem").objects.filter(status__in=["pending", "claimed"])
    oldest = items.filter(status="pending").order_by("created_at").values_list("created_at", flat=True).first()
    return items.count(), (timezone.now() - oldest).total_seconds() if oldest else 0.0


def answer_observed(
    *, status: str, reuse: str, latency_ms: int | None, ttft_ms: int | None, model: str, tokens_in: int,
    tokens_out: int, cost: Decimal, cost_avoided: Decimal,
) -> None:
    ANSWERS.labels(outcome=status, reuse=reuse).inc()
    if latency_ms is not None:
        LATENCY.observe(latency_ms / 1000)
    if ttft_ms is not None:
        TTFT.observe(ttft_ms / 1000)
    if model and (tokens_in or tokens_out):
        TOKENS.labels(model=model, direction="in").inc(tokens_in)
        TOKENS.labels(model=model, direction="out").inc(tokens_out)
    if cost:
        COST.labels(model=model or "unknown").inc(float(cost))
    if cost_avoided:
        COST_AVOIDED.inc(float(cost_avoided))


def exposition() -> bytes:
    """The text format of every process's metrics, the review queue read now."""
    depth, oldest = review_queue_state()
    QUEUE_DEPTH.set(depth)
    QUEUE_OLDEST.set(oldest)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess_collector.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()
