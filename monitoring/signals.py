"""Signals other apps listen to (monitoring imports no other app)."""

from django.dispatch import Signal

# Staff sent a new-topic cluster to the review queue: `cluster_id`, and `answers` as (message id,
# confidence or None) pairs. A receiver returns how many answers it queued.
topic_sent_to_review = Signal()
