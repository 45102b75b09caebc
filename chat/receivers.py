"""Chat's reactions to other apps' events (they never import chat)."""

from django.conf import settings
from django.dispatch import receiver

from knowledge.signals import documents_changed
from review.signals import answer_approved, answer_rejected, handoff_ended, served_model_changed

from . import services
from .reuse import services as reuse


@receiver(documents_changed)
def drop_answers_citing_documents(sender, document_ids, **kwargs) -> None:
    reuse.invalidate_documents(document_ids)


@receiver(answer_rejected)
def block_rejected_answer(sender, message_id, **kwargs) -> None:
    if settings.CACHE_BLOCK_ON_REJECTION:
        reuse.block_for_message(message_id=message_id, reason="rejected in review")
    services.answer_release(message_id=message_id, text=services.HELD_AND_REJECTED, sources=[])


@receiver(answer_approved)
def send_a_held_answer_as_approved(sender, message_id, text, **kwargs) -> None:
    services.answer_release(message_id=message_id, text=text)


@receiver(served_model_changed)
def block_answers_of_the_previous_model(sender, model_before, **kwargs) -> None:
    reuse.block_for_model(model=model_before or settings.LLM_MODEL, reason="the served model changed")


@receiver(handoff_ended)
def conversation_back_from_a_person(sender, conversation_id, status, **kwargs) -> None:
    services.conversation_after_handoff(conversation_id=conversation_id, status=status)
