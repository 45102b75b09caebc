"""Review's side of monitoring's `topic_sent_to_review`: the cluster's answers join the queue."""

from typing import Any
from uuid import UUID

from django.apps import apps

from .models import ReviewItem
from .services import review_item_enqueue

# An answer whose confidence monitoring did not record is as uncertain as a coin toss.
UNKNOWN_CONFIDENCE = 0.5


def topic_answers_enqueue(sender: Any, *, answers: list[tuple[UUID, float | None]], **kwargs: Any) -> int:
    """Queue each answer that still exists (a deleted conversation's answers are gone); how many."""
    message_ids = [message_id for message_id, _ in answers]
    # chat's table read by name: review never imports chat
    existing = set(apps.get_model("chat", "Message").objects.filter(pk__in=message_ids).values_list("pk", flat=True))
    queued = 0
    for message_id, confidence in answers:
        if message_id in existing:
            priority = 1 - (UNKNOWN_CONFIDENCE if confidence is None else confidence)
            review_item_enqueue(message_id=message_id, reasons=[ReviewItem.Reason.NEW_TOPIC], priority=priority)
            queued += 1
    return queued
