"""Writes for conversations, messages and feedback. Sync: the pipeline runs them on its database
threads (`chat.db.db_call`). Status changes are guarded updates."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import Max, Model
from django.db.models.sql import InsertQuery
from django.utils import timezone

from monitoring.services import answer_feedback_record, handoff_fact_open
from review.hours import availability_message
from review.models import Handoff, ReviewItem
from review.services import review_item_enqueue, review_item_unhold
from review.takeover import handoff_open_for, handoff_replied, handoff_request, live_announce

from .errors import CodedError
from .language import detect_language
from .models import Conversation, Feedback, Message
from .reuse.services import downvote_record, downvote_withdraw
from .safety.originals import original_keep
from .safety.pii import pii_mask
from .selectors import as_uuid
from .streams import push_frames


class NotFound(CodedError):
    """Unknown, or belonging to another visitor: the caller cannot tell which, on purpose."""


@dataclass(frozen=True)
class TurnRecords:
    conversation_id: uuid.UUID
    question: Message
    answer: Message | None  # None: a person holds the conversation, the assistant does not answer
    repeated: bool  # the client re-sent a client_msg_id we already have
    opened: Conversation | None = None  # the conversation this turn created (what it holds is known)


def _parse_uuid(value: object, code: str, what: str) -> uuid.UUID:
    pk = as_uuid(value)
    if pk is None:
        raise NotFound(code, f"No such {what}.")
    return pk


def conversation_create(*, visitor_id: str, channel: str) -> Conversation:
    return Conversation.objects.create(visitor_id=visitor_id, channel=channel)


def turn_start(
    *, visitor_id: str, conversation_id: object | None, channel: str, text: str, client_msg_id: str,
    pii_redacted: bool, person_requested: str | None = None,
) -> TurnRecords:
    """Store the question and an empty answer in `streaming` state, before anything can fail.

    Few round trips on the hot path (every chat's first token waits behind them): for a new
    conversation (created in the question's language when it tells), one statement; for an existing one, a
    transaction with a guarded UPDATE that checks the visitor owns the conversation and locks it,
    the last sequence, and one INSERT of both messages. A re-sent client_msg_id trips a unique
    constraint: within a conversation the messages', for an opening question the conversation's
    primary key, which that client_msg_id names (`_opening_id`), so a re-sent first question never
    opens a second conversation, even when both copies arrive at once.
    """
    pk = None if conversation_id in (None, "") else _parse_uuid(conversation_id, "conversation_not_found",
                                                                "conversation")
    try:
        if person_requested is not None:  # the question asks for a person: it goes to one
            return _turn_to_person(visitor_id, pk, channel, text, client_msg_id, pii_redacted, person_requested)
        if pk is None:
            return _turn_open(visitor_id, channel, text, client_msg_id, pii_redacted)
        return _turn_continue(visitor_id, pk, text, client_msg_id, pii_redacted)
    except IntegrityError:
        if not client_msg_id:
            raise
        return _turn_repeated(visitor_id, pk or _opening_id(visitor_id, client_msg_id), client_msg_id)


def _turn_repeated(visitor_id: str, pk: uuid.UUID, client_msg_id: str) -> TurnRecords:
    question = Message.objects.get(conversation_id=pk, conversation__visitor_id=visitor_id, client_msg_id=client_msg_id)
    return TurnRecords(pk, question, Message.objects.filter(reply_to=question).first(), repeated=True)


_OPENING = uuid.UUID("5c0f7f0e-8f0c-4b8e-9a59-2f1f6c1d2e77")


def _opening_id(visitor_id: str, client_msg_id: str) -> uuid.UUID:
    """The id of the conversation a first question opens: named by its visitor and client_msg_id, so
    the same question sent again names the same conversation; random without a client_msg_id."""
    return uuid.uuid5(_OPENING, f"{visitor_id}:{client_msg_id}") if client_msg_id else uuid.uuid4()


def _turn_open(visitor_id: str, channel: str, text: str, client_msg_id: str, pii_redacted: bool) -> TurnRecords:
    """The conversation and both messages in one statement (the conversation's INSERT a CTE of
    the messages'): one round trip instead of a transaction's four (BEGIN, two INSERTs, COMMIT).

    The conversation is created in the question's language when it tells (routing would
    otherwise write it in a second statement)."""
    opened = Conversation(
        id=_opening_id(visitor_id, client_msg_id), visitor_id=visitor_id, channel=channel,
        language=detect_language(text, fallback=""),
    )
    question, answer = _message_pair(opened.pk, 0, text, client_msg_id, pii_redacted)
    conversation_sql, conversation_params = _insert_statement(Conversation, [opened])
    messages_sql, messages_params = _insert_statement(Message, [question, answer])
    with connection.cursor() as cursor:
        cursor.execute(f"WITH opened AS ({conversation_sql}) {messages_sql}",
                       [*conversation_params, *messages_params])
    for row in (opened, question, answer):
        row._state.adding, row._state.db = False, connection.alias  # as saved by the ORM
    return TurnRecords(opened.pk, question, answer, repeated=False, opened=opened)


def _insert_statement(model: type[Model], rows: list[Model]) -> tuple[str, list[Any]]:
    """The INSERT the ORM would run for these rows (defaults, auto_now and field conversions
    applied), to be sent as part of a larger statement."""
    query = InsertQuery(model)
    query.insert_values(model._meta.concrete_fields, rows)
    [(statement, params)] = query.get_compiler(connection=connection).as_sql()
    return statement, list(params)


@transaction.atomic
def _turn_continue(visitor_id: str, pk: uuid.UUID, text: str, client_msg_id: str, pii_redacted: bool) -> TurnRecords:
    mine = Conversation.objects.filter(pk=pk, visitor_id=visitor_id)
    # The guarded UPDATE locks the conversation; one in handoff takes the slower path below.
    if not mine.exclude(status=Conversation.Status.HANDOFF).update(updated_at=timezone.now()):
        if not mine.update(updated_at=timezone.now()):
            raise NotFound("conversation_not_found", "No such conversation.")
        return _turn_for_person(pk, text, client_msg_id, pii_redacted)
    last = Message.objects.filter(conversation_id=pk).aggregate(m=Max("sequence"))["m"] or 0
    question, answer = _message_pair(pk, last, text, client_msg_id, pii_redacted)
    Message.objects.bulk_create([question, answer])
    return TurnRecords(pk, question, answer, repeated=False)


@transaction.atomic
def _turn_to_person(visitor_id: str, pk: uuid.UUID | None, channel: str, text: str, client_msg_id: str,
                    pii_redacted: bool, reason: str) -> TurnRecords:
    conversation = (
        Conversation.objects.create(id=_opening_id(visitor_id, client_msg_id), visitor_id=visitor_id, channel=channel,
                                    language=detect_language(text, fallback=""))
        if pk is None else Conversation.objects.select_for_update().filter(pk=pk, visitor_id=visitor_id).first()
    )
    if conversation is None:
        raise NotFound("conversation_not_found", "No such conversation.")
    conversation_handoff(conversation=conversation, reason=reason, detail=text)
    records = _turn_for_person(conversation.pk, text, client_msg_id, pii_redacted)
    return TurnRecords(conversation.pk, records.question, None, repeated=False,
                       opened=conversation if pk is None else None)


def _turn_for_person(pk: uuid.UUID, text: str, client_msg_id: str, pii_redacted: bool) -> TurnRecords:
    """A person holds the conversation: the question is stored for them, and no answer is started (the
    bot gate: whatever the client, the assistant stays silent)."""
    last = Message.objects.filter(conversation_id=pk).aggregate(m=Max("sequence"))["m"] or 0
    question, _ = _message_pair(pk, last, text, client_msg_id, pii_redacted)
    question.save(force_insert=True)
    transaction.on_commit(lambda: live_announce(conversation_id=pk, event="message"))
    return TurnRecords(pk, question, None, repeated=False)


def _message_pair(
    conversation_id: uuid.UUID, last: int, text: str, client_msg_id: str, pii_redacted: bool
) -> tuple[Message, Message]:
    question = Message(
        id=uuid.uuid4(), conversation_id=conversation_id, sequence=last + 1, role=Message.Role.USER, text=text,
        client_msg_id=client_msg_id, pii_redacted=pii_redacted,
    )
    answer = Message(
        id=uuid.uuid4(), conversation_id=conversation_id, sequence=last + 2, role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING, reply_to=question,
    )
    return question, answer


def question_searched_as(*, message_id: uuid.UUID, text: str) -> None:
    """Keep the standalone form a follow-up was searched with, for trainers and approved answers."""
    Message.objects.filter(pk=message_id, role=Message.Role.USER).update(standalone_query=text)


def answer_complete(*, message_id: uuid.UUID, text: str, facts: dict[str, Any]) -> bool:
    updated = Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(
        text=text, status=Message.Status.COMPLETE, completed_at=timezone.now(), **facts
    )
    return updated == 1


# What a visitor whose held answer a trainer rejected is sent instead of it.
HELD_AND_REJECTED = ("I could not give you an answer I am sure of here. If you need one, ask for a person with "
                     "\u201cTalk to a human\u201d.")


def answer_hold(*, message_id: uuid.UUID, text: str, facts: dict[str, Any], expires: bool = True) -> bool:
    """Store a generated answer without sending it: it waits for a trainer until `held_until` (sent as it
    is then), or with `expires` False until a trainer decides."""
    until = timezone.now() + timedelta(seconds=settings.REVIEW_HOLD_SECONDS) if expires else None
    return Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(
        text=text, status=Message.Status.HELD, held_until=until, **facts) == 1


@transaction.atomic
def answer_release(
    *, message_id: uuid.UUID, text: str | None = None, note: str = "", sources: list[Any] | None = None
) -> bool:
    """Send a held answer: the trainer's text (approved or edited), or the answer as it was (`text`
    None: its hold ran out), with `note` after it. Exactly once, whoever comes first; then every socket
    of the conversation gets it, and a socket that comes back gets it on `resume`."""
    message = Message.objects.select_for_update().filter(pk=message_id, status=Message.Status.HELD).first()
    if message is None:
        return False  # released already (a trainer and the timeout raced), or never held
    if text is not None:
        message.text = text
    if sources is not None:
        message.sources = sources
    message.status, message.completed_at = Message.Status.COMPLETE, timezone.now()
    message.save(update_fields=["text", "sources", "status", "completed_at"])
    # The note is the visitor's, not the answer's: an approval of it later must not carry it.
    shown = message.text + (f"\n\n{note}" if note else "")
    frames = [
        {"type": "token", "message_id": str(message.pk), "seq": 1, "text": shown},
        {"type": "end", "message_id": str(message.pk), "sources": message.sources, "confidence": message.confidence,
         "reuse": message.reuse, "latency_ms": message.latency_ms},
    ]
    transaction.on_commit(lambda: push_frames(conversation_id=message.conversation_id, frames=frames))
    return True


def held_answers_release_due() -> int:
    """Answers whose hold ran out, sent as they were (beat). Not in a conversation a person holds: there
    only a person speaks, and the held answer waits for a trainer's decision."""
    due = Message.objects.filter(status=Message.Status.HELD, held_until__lte=timezone.now()).exclude(
        conversation__status=Conversation.Status.HANDOFF).values_list("pk", flat=True)
    released = 0
    for pk in list(due):
        if answer_release(message_id=pk, note=settings.REVIEW_HOLD_NOTE):
            review_item_unhold(message_id=pk)
            released += 1
    return released


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
    # A comment is the visitor's free text: stored masked, like their questions; the original sealed for staff.
    masked = pii_mask(comment)
    feedback, _ = Feedback.objects.update_or_create(
        message=message, defaults={"value": value, "reason": pii_mask(reason[:200]).text, "comment": masked.text}
    )
    original_keep(feedback_id=feedback.pk, original=comment if masked.found else "")
    answer_feedback_record(message_id=message.pk, value=value)
    if value == Feedback.Value.DOWN:  # not served to this visitor from the cache again, and a trainer sees it
        downvote_record(feedback=feedback, visitor_id=visitor_id)
        _queue_for_review(message, ReviewItem.Reason.THUMBS_DOWN, feedback_reason=reason)
    else:
        downvote_withdraw(feedback=feedback)
    return feedback


@transaction.atomic
def conversation_handoff(
    *, conversation: Conversation, reason: str = Handoff.Reason.ASKED, detail: str = ""
) -> Handoff:
    """Ask for a person: the conversation waits for a trainer and the assistant stops answering in it;
    asking again while one is open changes nothing. The answer that left the visitor wanting a person
    goes to the review queue."""
    handed_off = Conversation.objects.filter(pk=conversation.pk).exclude(
        status=Conversation.Status.HANDOFF).update(status=Conversation.Status.HANDOFF) == 1
    handoff, opened = handoff_request(conversation_id=conversation.pk, reason=reason, detail=detail)
    last_answer = Message.objects.filter(
        conversation_id=conversation.pk, role=Message.Role.ASSISTANT, status=Message.Status.COMPLETE
    ).order_by("-sequence").first()
    if opened:  # measured against the prompt version that answered last (what an experiment compares)
        handoff_fact_open(handoff_id=handoff.pk, conversation_id=conversation.pk, reason=handoff.reason,
                          requested_at=handoff.requested_at,
                          prompt_version_id=last_answer.prompt_version_id if last_answer else None)
    if handed_off and last_answer is not None:
        _queue_for_review(last_answer, ReviewItem.Reason.HANDOFF)
    return handoff


@transaction.atomic
def human_reply(*, conversation_id: uuid.UUID, user: User, text: str) -> Message:
    """A trainer's reply in a conversation they took over: stored as a `human` message, then sent to every
    socket of the conversation as a `human` frame once stored."""
    text = text.strip()
    if not text:
        raise CodedError("empty_reply", "Write a reply first.")
    handoff = handoff_open_for(conversation_id=conversation_id)
    if handoff is None:
        raise CodedError("not_in_handoff", "Nobody is waiting for a person in this conversation.")
    Conversation.objects.filter(pk=conversation_id).update(updated_at=timezone.now())  # the lock, as a turn's
    last = Message.objects.filter(conversation_id=conversation_id).aggregate(m=Max("sequence"))["m"] or 0
    reply = Message.objects.create(
        conversation_id=conversation_id, sequence=last + 1, role=Message.Role.HUMAN, text=text,
        model=HUMAN_PREFIX + agent_name(user), completed_at=timezone.now(),
    )
    handoff_replied(handoff=handoff, user=user, at=reply.created_at)
    frame = _human_frame(reply)
    transaction.on_commit(lambda: push_frames(conversation_id=conversation_id, frames=[frame]))
    return reply


# A person's reply names them in `model` (as an answer names its model): "human:<display name>".
HUMAN_PREFIX = "human:"


def _human_frame(reply: Message) -> dict[str, Any]:
    return {"type": "human", "message_id": str(reply.pk), "text": reply.text,
            "agent": reply.model.removeprefix(HUMAN_PREFIX), "conversation_id": str(reply.conversation_id)}


def human_replies(*, conversation_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every person's reply in the conversation, as `human` frames, oldest first."""
    replies = Message.objects.filter(conversation_id=conversation_id, role=Message.Role.HUMAN).order_by("sequence")
    return [_human_frame(reply) for reply in replies]


def handoff_frame(*, conversation_id: uuid.UUID, question_id: uuid.UUID | None = None) -> dict[str, Any]:
    """What a visitor's sockets are told about the person they asked for: waiting (and, outside support
    hours, when someone will answer) or who is answering."""
    handoff = handoff_open_for(conversation_id=conversation_id)
    frame: dict[str, Any] = {"type": "handoff", "conversation_id": str(conversation_id)}
    if question_id is not None:
        frame["message_id"] = str(question_id)
    if handoff is None:
        return {**frame, "status": "none", "message": "You are talking to the assistant."}
    if handoff.status == Handoff.Status.TAKEN and handoff.taken_by is not None:
        agent = agent_name(handoff.taken_by)
        return {**frame, "status": "taken", "agent": agent, "message": f"{agent} is answering you."}
    later = availability_message()
    return {**frame, "status": "waiting", "message": later or "A person will answer you here shortly."}


def agent_name(user: User) -> str:
    """How a trainer is shown to visitors: their first name, else their username."""
    return user.first_name or user.get_username()


def conversation_after_handoff(*, conversation_id: uuid.UUID, status: str) -> None:
    """The handoff ended: back to the assistant, or closed; the visitor's sockets are told."""
    closed = status == Handoff.Status.CLOSED
    Conversation.objects.filter(pk=conversation_id, status=Conversation.Status.HANDOFF).update(
        status=Conversation.Status.CLOSED if closed else Conversation.Status.OPEN)
    frame = {"type": "handoff", "conversation_id": str(conversation_id), "status": status,
             "message": "The conversation was closed." if closed else "You are talking to the assistant again."}
    transaction.on_commit(lambda: push_frames(conversation_id=conversation_id, frames=[frame]))


def _queue_for_review(answer: Message, reason: str, feedback_reason: str = "") -> None:
    """A visitor's signal on a complete answer (one still streaming or failed has nothing to approve)."""
    if answer.status == Message.Status.COMPLETE:
        review_item_enqueue(message_id=answer.pk, reasons=[reason], feedback_reason=feedback_reason,
                            priority=1 - answer.confidence if answer.confidence is not None else 0.0)


