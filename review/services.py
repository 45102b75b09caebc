from uuid import UUID

from django.db.models.functions import Greatest

from .models import ReviewItem


def review_item_enqueue(*, message_id: UUID, priority: float, reason: str) -> ReviewItem:
    """Queue an answer for review, or raise its priority if it is already queued."""
    item, created = ReviewItem.objects.get_or_create(
        message_id=message_id, defaults={"priority": priority, "reason": reason}
    )
    if not created:
        ReviewItem.objects.filter(pk=item.pk).update(priority=Greatest("priority", priority))
        item.refresh_from_db()
    return item
