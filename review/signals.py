"""Signals other apps listen to (review never imports chat)."""

from django.dispatch import Signal

# A trainer rejected an answer (`message_id`): whatever reuses it must stop.
answer_rejected = Signal()

# The model answers are generated with changed (a promotion or a rollback): answers `model_before` made
# must not be reused as if the new model had made them. "" names the configured LLM_MODEL.
served_model_changed = Signal()

# A handoff ended (`status`: returned to the assistant, or closed): the conversation follows.
handoff_ended = Signal()

# A trainer approved (or edited) an answer, `text` as approved: an answer held for them is sent with it.
answer_approved = Signal()
