"""Signals other apps listen to (review never imports chat)."""

from django.dispatch import Signal

# A trainer rejected an answer (`message_id`): whatever reuses it must stop.
answer_rejected = Signal()
