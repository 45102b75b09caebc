"""Signals other apps listen to; knowledge itself imports none of them."""

from django.dispatch import Signal

# Sent inside the transaction that changes or deletes documents, with `document_ids`: whatever
# was built on their old content (cached answers) must go in the same transaction.
documents_changed = Signal()
