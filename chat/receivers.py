"""Chat's reactions to other apps' events (they never import chat)."""

from django.dispatch import receiver

from knowledge.signals import documents_changed
from review.signals import answer_rejected

from .reuse import services as reuse


@receiver(documents_changed)
def drop_answers_citing_documents(sender, document_ids, **kwargs) -> None:
    reuse.invalidate_documents(document_ids)


@receiver(answer_rejected)
def block_rejected_answer(sender, message_id, **kwargs) -> None:
    reuse.block_for_message(message_id=message_id, reason="rejected in review")
