from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import TypedDict

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from .models import AnswerFact


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
