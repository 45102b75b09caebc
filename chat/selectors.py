from __future__ import annotations

import uuid

from .models import Conversation, Message


def as_uuid(value: object) -> uuid.UUID | None:
    """A client-supplied id as a UUID, or None when it is not one."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def conversation_get_for_visitor(*, visitor_id: str, conversation_id: object) -> Conversation | None:
    pk = as_uuid(conversation_id)
    return Conversation.objects.filter(pk=pk, visitor_id=visitor_id).first() if pk else None


def message_get_in_conversation(*, conversation: Conversation, message_id: object) -> Message | None:
    pk = as_uuid(message_id)
    return Message.objects.filter(pk=pk, conversation=conversation).first() if pk else None


def earlier_turns(*, conversation_id: uuid.UUID, before_sequence: int) -> list[Message]:
    """The conversation's complete questions and answers before this one, oldest first; a person's replies
    count as answers (after a hand-back the assistant knows what they said), a held answer does not."""
    return list(Message.objects.filter(
        conversation_id=conversation_id, sequence__lt=before_sequence, status=Message.Status.COMPLETE,
    ).order_by("sequence"))
