from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import metrics
from .dashboard import QUEUE_DEPTH, QUEUE_OLDEST
from .models import AnswerFact, GaugeSample, HandoffFact
from .rollups import Dimensions, answer_counts, rollup_add


def answer_fact_record(*, message_id: UUID, conversation_id: UUID, status: str, **facts: Any) -> AnswerFact:
    """One fact per answer, written once when the answer ends (complete or failed), with its minute, hour and
    day rollups in the same transaction; counted for Prometheus. `facts`: the other AnswerFact fields the
    answer has (model, tokens, cost, latency, language, arm, question…); a name the model lacks is an error."""
    fact = AnswerFact(message_id=message_id, conversation_id=conversation_id, status=status, **facts)
    metrics.answer_observed(status=fact.status, reuse=fact.reuse, latency_ms=fact.latency_ms, ttft_ms=fact.ttft_ms,
                            model=fact.model, tokens_in=fact.tokens_in, tokens_out=fact.tokens_out, cost=fact.cost,
                            cost_avoided=fact.cost_avoided)
    with transaction.atomic():
        fact.save(force_insert=True)
        rollup_add(at=fact.created_at, dimensions=Dimensions.of(fact), counts=answer_counts(fact),
                   latency_ms=fact.latency_ms, ttft_ms=fact.ttft_ms)
    return fact


@transaction.atomic
def answer_feedback_record(*, message_id: UUID, value: str) -> None:
    """The visitor's thumbs on an answer ("up", "down", or "" when taken back): a change moves the count in the
    answer's rollups from the old value to the new one. An answer whose fact was compacted away is not counted."""
    fact = AnswerFact.objects.select_for_update().filter(message_id=message_id).first()
    if fact is None or fact.feedback == value:
        return
    counts = {"thumbs_up": 0, "thumbs_down": 0}
    for given, sign in ((fact.feedback, -1), (value, 1)):
        if given in ("up", "down"):
            counts[f"thumbs_{given}"] += sign
    AnswerFact.objects.filter(pk=fact.pk).update(feedback=value)
    rollup_add(at=fact.created_at, dimensions=Dimensions.of(fact), counts=counts)


def handoff_fact_open(
    *, handoff_id: int, conversation_id: UUID, reason: str, requested_at: datetime, prompt_version_id: int | None
) -> HandoffFact:
    """A visitor asked for a person (written once, when the request opens a handoff), counted in the rollups
    under the dimensions of the conversation's last answer."""
    metrics.HANDOFFS.labels(reason=reason).inc()
    with transaction.atomic():
        fact, created = HandoffFact.objects.get_or_create(handoff_id=handoff_id, defaults={
            "conversation_id": conversation_id, "reason": reason, "requested_at": requested_at,
            "prompt_version_id": prompt_version_id,
        })
        if created:
            last = AnswerFact.objects.filter(conversation_id=conversation_id, created_at__lte=requested_at).order_by(
                "-created_at").first()
            dimensions = Dimensions.of(last) if last else Dimensions(prompt_version_id=prompt_version_id or 0)
            rollup_add(at=requested_at, dimensions=dimensions, counts={"handoffs": 1})
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


def gauges_sample(*, now: datetime | None = None) -> None:
    """Record the review queue's depth and oldest wait for the dashboard's history (levels, not sums)."""
    depth, oldest = metrics.review_queue_state()
    at = now or timezone.now()
    GaugeSample.objects.bulk_create([
        GaugeSample(name=QUEUE_DEPTH, at=at, value=depth), GaugeSample(name=QUEUE_OLDEST, at=at, value=oldest),
    ])
    GaugeSample.objects.filter(at__lt=at - timedelta(days=settings.MONITORING_MINUTE_ROLLUP_DAYS)).delete()
