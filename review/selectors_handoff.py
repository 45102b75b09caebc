"""Measures of human takeover: how often visitors ask for a person and why, how fast a person first
replies, and how many handed-off conversations end resolved. Read by the handoff list in admin, and by
monitoring and experiments for any window they choose."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Aggregate, Count, DurationField, F, Q

from .models import Handoff


class Median(Aggregate):
    """PostgreSQL's exact median; a mean would let one handoff left waiting over a weekend swamp the rest."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = DurationField()


@dataclass(frozen=True)
class HandoffMeasures:
    since: datetime
    per_reason: dict[str, int]  # every reason of the taxonomy, zeros included
    total: int
    conversations: int  # conversations started in the window: the denominator of the handoff rate
    replied: int
    median_first_reply: timedelta | None  # None: no handoff in the window got a human reply yet
    ended: int
    resolved: int

    @property
    def rate(self) -> float | None:
        """Handoffs per conversation started in the window."""
        return self.total / self.conversations if self.conversations else None

    def rate_of(self, reason: str) -> float | None:
        return self.per_reason.get(reason, 0) / self.conversations if self.conversations else None

    @property
    def resolved_share(self) -> float | None:
        """Of the handoffs that ended (handed back or closed), the share closed as resolved."""
        return self.resolved / self.ended if self.ended else None


def handoff_measures(*, since: datetime) -> HandoffMeasures:
    """The handoffs requested at or after `since`, measured."""
    handoffs = Handoff.objects.filter(requested_at__gte=since)
    counts = dict(handoffs.order_by().values_list("reason").annotate(n=Count("pk")).values_list("reason", "n"))
    totals: dict[str, Any] = handoffs.aggregate(
        total=Count("pk"),
        replied=Count("pk", filter=Q(first_reply_at__isnull=False)),
        median=Median(F("first_reply_at") - F("requested_at"), filter=Q(first_reply_at__isnull=False)),
        ended=Count("pk", filter=Q(ended_at__isnull=False)),
        resolved=Count("pk", filter=Q(ended_at__isnull=False, resolved=True)),
    )
    return HandoffMeasures(
        since=since, per_reason={reason: counts.get(reason, 0) for reason in Handoff.Reason.values},
        total=totals["total"], conversations=_conversations_since(since), replied=totals["replied"],
        median_first_reply=totals["median"], ended=totals["ended"], resolved=totals["resolved"],
    )


def _conversations_since(since: datetime) -> int:
    # Through the foreign key's model: review does not import chat.
    conversation_model = Handoff._meta.get_field("conversation").related_model
    assert conversation_model is not None and not isinstance(conversation_model, str)
    return conversation_model._default_manager.filter(created_at__gte=since).count()
