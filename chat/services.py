"""Writes for conversations, messages and feedback. Sync, called from the pipeline through
database_sync_to_async; status changes are guarded updates."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from . import cache
from .errors import CodedError
from .models import Conversation, Feedback, Message
from .selectors import as_uuid


class NotFound(CodedError):
    """Unknown, or belonging to another visitor: the caller cannot tell which, on purpose."""


@dataclass(frozen=True)
class TurnRecords:
    conversation_id: uuid.UUID
    question: Message
    answer: Message
    repeated: bool  # the client re-sent a client_msg_id we already have
    opened: Conversation | None = None  # the conversation this turn created (what it holds is known)


def _parse_uuid(value: object, code: str, what: str) -> uuid.UUID:
    pk = as_uuid(value)
    if pk is None:
        raise NotFound(code, f"No such {what}.")
    return pk


def conversation_create(*, visitor_id: str, channel: str, language: str = "") -> Conversation:
    return Conversation.objects.create(visitor_id=visitor_id, channel=channel, language=language)


def turn_start(
    *, visitor_id: str, conversation_id: object | None, channel: str, text: str, client_msg_id: str,
    pii_redacted: bool, language: str = "",
) -> TurnRecords:
    """Store the question and an empty answer in `streaming` state, before anything can fail.

    Three statements on the hot path (every chat's first token waits behind them): a guarded
    UPDATE that checks the visitor owns the conversation and locks it, the last sequence, and
    one INSERT of both messages; for a new conversation (created in `language` when it is known),
    its INSERT and the messages'. A re-sent client_msg_id trips the unique constraint.
    """
    pk = None if conversation_id in (None, "") else _parse_uuid(conversation_id, "conversation_not_found",
                                                                "conversation")
    try:
        return _turn_create(visitor_id, pk, channel, text, client_msg_id, pii_redacted, language)
    except IntegrityError:
        if not client_msg_id or pk is None:
            raise
        question = Message.objects.get(conversation_id=pk, client_msg_id=client_msg_id)
        return TurnRecords(pk, question, Message.objects.get(reply_to=question), repeated=True)


@transaction.atomic
def _turn_create(
    visitor_id: str, pk: uuid.UUID | None, channel: str, text: str, client_msg_id: str, pii_redacted: bool,
    language: str,
) -> TurnRecords:
    opened = None
    if pk is None:
        opened = conversation_create(visitor_id=visitor_id, channel=channel, language=language)
        pk, last = opened.pk, 0
    else:
        owned = Conversation.objects.filter(pk=pk, visitor_id=visitor_id).update(updated_at=timezone.now())
        if not owned:
            raise NotFound("conversation_not_found", "No such conversation.")
        last = Message.objects.filter(conversation_id=pk).aggregate(m=Max("sequence"))["m"] or 0
    question = Message(
        id=uuid.uuid4(), conversation_id=pk, sequence=last + 1, role=Message.Role.USER, text=text,
        client_msg_id=client_msg_id, pii_redacted=pii_redacted,
    )
    answer = Message(
        id=uuid.uuid4(), conversation_id=pk, sequence=last + 2, role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING, reply_to=question,
    )
    Message.objects.bulk_create([question, answer])
    return TurnRecords(pk, question, answer, repeated=False, opened=opened)


def answer_complete(*, message_id: uuid.UUID, text: str, facts: dict[str, Any]) -> bool:
    updated = Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(
        text=text, status=Message.Status.COMPLETE, completed_at=timezone.now(), **facts
    )
    return updated == 1


def answer_fail(*, message_id: uuid.UUID, partial_text: str, error: str, timings: dict[str, Any]) -> bool:
    updated = Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(
        text=partial_text, status=Message.Status.FAILED, error=error[:2000], completed_at=timezone.now(),
        timings=timings,
    )
    return updated == 1


def stale_streaming_fail(*, older_than: timedelta) -> int:
    """Answers left `streaming` by a process that died are failed, never left hanging."""
    return Message.objects.filter(
        status=Message.Status.STREAMING, created_at__lt=timezone.now() - older_than
    ).update(status=Message.Status.FAILED, error="the answering process stopped", completed_at=timezone.now())


def feedback_set(*, visitor_id: str, message_id: object, value: str, reason: str = "", comment: str = "") -> Feedback:
    pk = _parse_uuid(message_id, "message_not_found", "message")
    message = Message.objects.filter(
        pk=pk, role=Message.Role.ASSISTANT, conversation__visitor_id=visitor_id
    ).first()
    if message is None:
        raise NotFound("message_not_found", "No such answer.")
    feedback, _ = Feedback.objects.update_or_create(
        message=message, defaults={"value": value, "reason": reason[:200], "comment": comment}
    )
    if value == Feedback.Value.DOWN:  # the answer is never served from the cache again
        cache.block_for_message(message_id=message.pk, reason=f"thumbs down: {reason}"[:200])
    return feedback


def conversation_handoff(*, conversation: Conversation) -> bool:
    """Ask for a human; only an open conversation can be handed off."""
    return Conversation.objects.filter(pk=conversation.pk, status=Conversation.Status.OPEN).update(
        status=Conversation.Status.HANDOFF
    ) == 1


