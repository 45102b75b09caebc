from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TypedDict

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from .models import AnswerFact, HandoffFact


def recent_tokens_in(*, model: str, limit: int = 200) -> list[int]:
    """Input tokens of the latest generated (not reused) answers by a model, for cost estimates."""
    return list(
        AnswerFact.objects.filter(model=model, reuse="none", status="complete", tokens_in__gt=0)
        .order_by("-created_at").values_list("tokens_in", flat=True)[:limit]
    )


class CostRow(TypedDict):
    day: date
    model: str
    answers: int
    reused: int
    tokens_in: int
    tokens_out: int
    cost: Decimal
    avoided: Decimal


class CostTotals(TypedDict):
    answers: int
    approved: int
    cached: int
    cost: Decimal
    avoided: Decimal
    reuse_rate: float


def cost_by_day_and_model(*, days: int = 30) -> list[CostRow]:
    """Per day and model: answers, reused answers, tokens, cost and the cost reuse avoided."""
    since = timezone.now() - timedelta(days=days)
    rows = (
        AnswerFact.objects.filter(created_at__gte=since, status="complete")
        .annotate(day=TruncDate("created_at"))
        .values("day", "model")
        .annotate(
            answers=Count("id"), reused=Count("id", filter=~Q(reuse="none")),
            tokens_in=Sum("tokens_in"), tokens_out=Sum("tokens_out"), cost=Sum("cost"),
            avoided=Sum("cost_avoided"),
        )
        .order_by("-day", "model")
    )
    return [CostRow(**row) for row in rows]


def cost_totals(*, days: int = 30) -> CostTotals:
    since = timezone.now() - timedelta(days=days)
    totals = AnswerFact.objects.filter(created_at__gte=since, status="complete").aggregate(
        answers=Count("id"), approved=Count("id", filter=Q(reuse="approved")),
        cached=Count("id", filter=Q(reuse="cache")), cost=Sum("cost"), avoided=Sum("cost_avoided"),
    )
    answers, reused = totals["answers"], totals["approved"] + totals["cached"]
    return CostTotals(
        answers=answers, approved=totals["approved"], cached=totals["cached"],
        cost=totals["cost"] or Decimal(0), avoided=totals["avoided"] or Decimal(0),
        reuse_rate=reused / answers if answers else 0.0,
    )


class HandoffRate(TypedDict):
    prompt_version_id: int | None
    answers: int
    handoffs: int
    rate: float  # handoffs per answer
    resolved_share: float | None  # of the handoffs that ended, closed as resolved


def handoff_rates(*, since: datetime) -> dict[str, object]:
    """Requests for a person since then: per reason, per prompt version (against its answers: what a prompt
    experiment compares), the median time to a person's first reply, and the share resolved."""
    facts = HandoffFact.objects.filter(requested_at__gte=since)
    per_reason = dict(facts.values_list("reason").annotate(n=Count("pk")).values_list("reason", "n"))
    answers = dict(AnswerFact.objects.filter(created_at__gte=since).values_list("prompt_version_id")
                   .annotate(n=Count("pk")).values_list("prompt_version_id", "n"))
    rows: list[HandoffRate] = []
    for version, count in facts.values_list("prompt_version_id").annotate(n=Count("pk")).values_list(
            "prompt_version_id", "n"):
        # closed as resolved or not; one handed back to the assistant is neither
        closed = facts.filter(prompt_version_id=version, resolved__isnull=False)
        resolved = closed.filter(resolved=True).count()
        rows.append({"prompt_version_id": version, "answers": answers.get(version, 0), "handoffs": count,
                     "rate": count / max(answers.get(version, 0), 1),
                     "resolved_share": resolved / closed.count() if closed.exists() else None})
    replies = facts.filter(first_reply_at__isnull=False).values_list("requested_at", "first_reply_at")
    waits = sorted((replied - asked).total_seconds() for asked, replied in replies if replied is not None)
    median = waits[len(waits) // 2] if waits else None
    return {"per_reason": per_reason, "per_prompt_version": rows, "median_first_reply_seconds": median}
