from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from . import metrics
from .models import AnswerFact, HandoffFact


def answer_fact_record(
    *,
    message_id: UUID,
    conversation_id: UUID,
    status: str,
    error_code: str = "",
    model: str = "",
    prompt_version_id: int | None = None,
    reuse: str = "none",
    confidence: float | None = None,
    latency_ms: int | None = None,
    ttft_ms: int | None = None,
    tokens_in: int = 0,
    tokens_out: int = 0,
    cost: Decimal = Decimal(0),
    cost_avoided: Decimal = Decimal(0),
    offline: bool = False,
    timings: dict[str, Any] | None = None,
    features: dict[str, Any] | None = None,
) -> AnswerFact:
    """One fact per answer, written once when the answer ends (complete or failed); counted for Prometheus."""
    metrics.answer_observed(status=status, reuse=reuse, latency_ms=latency_ms, ttft_ms=ttft_ms, model=model,
                            tokens_in=tokens_in, tokens_out=tokens_out, cost=cost, cost_avoided=cost_avoided)
    return AnswerFact.objects.create(
        message_id=message_id, conversation_id=conversation_id, status=status, error_code=error_code, model=model,
        prompt_version_id=prompt_version_id, reuse=reuse, confidence=confidence, latency_ms=latency_ms,
        ttft_ms=ttft_ms, tokens_in=tokens_in, tokens_out=tokens_out, cost=cost, cost_avoided=cost_avoided,
        offline=offline, timings=timings or {}, features=features or {},
    )


def handoff_fact_open(
    *, handoff_id: int, conversation_id: UUID, reason: str, requested_at: datetime, prompt_version_id: int | None
) -> HandoffFact:
    """A visitor asked for a person (written once, when the request opens a handoff)."""
    metrics.HANDOFFS.labels(reason=reason).inc()
    fact, _ = HandoffFact.objects.get_or_create(handoff_id=handoff_id, defaults={
        "conversation_id": conversation_id, "reason": reason, "requested_at": requested_at,
        "prompt_version_id": prompt_version_id,
    })
    return fact


def handoff_fact_update(
    *, handoff_id: int, status: str, first_reply_at: datetime | None = None, ended_at: datetime | None = None,
    resolved: bool | None = None,
) -> None:
    """What happened since: taken over, the first reply (kept once set), handed back or closed."""
    HandoffFact.objects.filter(handoff_id=handoff_id).update(status=status, ended_at=ended_at, resolved=resolved)
    if first_reply_at is not None:
        HandoffFact.objects.filter(handoff_id=handoff_id, first_reply_at__isnull=True).update(
            first_reply_at=first_reply_at)
