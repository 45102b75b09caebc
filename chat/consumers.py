"""`/ws/chat/`: parses frames, calls the pipeline, forwards the conversation's frames.

Frames are in DESIGN.md. The socket opens with a one-use ticket (`?ticket=`, chat/visitors.py); a
missing, expired or used one closes it with code 4401 (fetch a new ticket, then reconnect). A bad
frame, a limited one (chat/limits.py) and one whose handling fails unexpectedly each get an `error`
frame with a stable code, and the socket stays open. Answers run as background tasks and reach the
socket through the conversation's channel-layer group, so a reconnecting client (or a second tab)
can `resume` them.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from config.logging import bind, new_request_id
from monitoring import metrics
from review.takeover import LIVE_GROUP

from . import pipeline, services
from .db import db_call
from .errors import CodedError
from .limits import (
    AnswerSlot,
    RateLimited,
    SocketWindow,
    answer_slot_release,
    client_address,
    message_admit,
    release_when_done,
)
from .models import Conversation, Feedback, Message
from .selectors import conversation_get_for_visitor, message_get_in_conversation
from .streams import (
    ConversationBroadcast,
    conversation_group,
    stream_log_after,
    watchers_add,
    watchers_remove,
)
from .visitors import ticket_redeem

logger = logging.getLogger(__name__)

# The close code of a socket opened without a valid ticket: the client fetches a new ticket and reconnects.
CLOSE_NO_TICKET = 4401


class FrameError(CodedError):
    """A frame that does not fit the protocol."""


class NotStored(CodedError):
    """A question that failed before it was stored: the client sends it again (same client_msg_id)."""

    def __init__(self) -> None:
        super().__init__("internal_error", "Your message was not received; please send it again.")


def _optional_str(content: dict[str, Any], key: str, max_length: int = 200) -> str:
    value = content.get(key)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > max_length:
        raise FrameError("invalid_frame", f"'{key}' must be a string of at most {max_length} characters.")
    return value


class ChatConsumer(AsyncJsonWebsocketConsumer):
    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its `aclose_old_connections()` before every message: that is a
        hop onto one shared thread per frame, so at 50 chats every frame of every socket queued
        behind it, and it would close nothing here: this consumer reaches the database only
        through `db_call`, whose threads hand their connections back themselves."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        with bind(request_id=new_request_id()):  # in the logs, each frame is a request of its own
            await super().websocket_receive(message)

    async def connect(self) -> None:
        self.conversations_watched: set[str] = set()
        self.answering: set[ConversationBroadcast] = set()
        self.in_flight: dict[str, AnswerSlot] = {}  # answer id -> the visitor's slot it holds
        self.frames = SocketWindow(settings.CHAT_SOCKET_FRAME_LIMIT)
        self.messages = SocketWindow(settings.CHAT_SOCKET_MESSAGE_LIMIT)
        ticket = parse_qs(self.scope.get("query_string", b"").decode()).get("ticket", [""])[0]
        visitor_id = await ticket_redeem(ticket)
        if visitor_id is None:
            # Accepted, then closed: a browser sees the close code only on an accepted socket.
            await self.accept()
            await self.close(code=CLOSE_NO_TICKET)
            return
        self.visitor_id: str = visitor_id
        self.address = client_address(self.scope)
        self.sent_seq: dict[str, int] = {}
        self.ended: set[str] = set()
        self.conversation_id: str | None = None
        self.with_person: set[str] = set()  # conversations this socket asked a person into
        await self.accept()
        metrics.WEBSOCKETS.inc()

    async def disconnect(self, code: int) -> None:
        if not hasattr(self, "visitor_id"):
            return  # closed for want of a ticket: never counted, never watching
        metrics.WEBSOCKETS.dec()
        for broadcast in self.answering:
            broadcast.detach()
        for conversation_id in self.conversations_watched:
            await watchers_remove(conversation_id)
            await self.channel_layer.group_discard(conversation_group(conversation_id), self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        try:
            self.frames.hit("frames")
        except RateLimited as exc:
            await self.send_error(exc.code, str(exc), retry_after=exc.retry_after)
            return
        size = len(text_data.encode()) if text_data is not None else len(bytes_data or b"")
        if size > settings.CHAT_MAX_FRAME_BYTES:
            await self.send_error("frame_too_large", f"A frame is at most {settings.CHAT_MAX_FRAME_BYTES} bytes.")
            return
        try:
            content = json.loads(text_data) if text_data is not None else None
        except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than the parser goes
            await self.send_error("invalid_json", "Frames must be JSON text.")
            return
        if not isinstance(content, dict):
            await self.send_error("invalid_frame", "A frame is a JSON object with a 'type'.")
            return
        await self.receive_json(content)

    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        kind = content.get("type")
        handler = self.handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            await self.send_error("unknown_type",
                                  "Unknown frame type; use message, feedback, handoff, resume, watch or typing.")
            return
        # An error about a question names it, so the client knows which one to send again.
        about = {"client_msg_id": content["client_msg_id"]} if isinstance(content.get("client_msg_id"), str) else {}
        try:
            await handler(self, content)
        except RateLimited as exc:
            await self.send_error(exc.code, str(exc), retry_after=exc.retry_after, **about)
        except NotStored as exc:
            await self.send_error(exc.code, str(exc), stored=False, **about)
        except CodedError as exc:
            await self.send_error(exc.code, str(exc), **about)
        except Exception:  # whatever went wrong with this frame, the socket and its other answers go on
            logger.exception("a %s frame failed", kind)
            await self.send_error("internal_error", "Something went wrong; please try again.", **about)

    async def send_error(self, code: str, message: str, **extra: Any) -> None:
        await self.send_json({"type": "error", "code": code, "message": message, **extra})

    # --- client frames ---------------------------------------------------------------------------

    async def on_message(self, content: dict[str, Any]) -> None:
        client_msg_id = _optional_str(content, "client_msg_id", 100)
        try:
            turn, slot = await self._open_turn(content, client_msg_id)
        except pipeline.PersonHolds as held:  # stored; the trainer answers with `human` frames
            await self._watch(str(held.conversation_id))
            self.with_person.add(str(held.conversation_id))
            await self.send_json(await db_call(services.handoff_frame)(
                conversation_id=held.conversation_id, question_id=held.question_id))
            return
        await self.send_json({"type": "start", "conversation_id": str(turn.conversation_id),
                              "message_id": str(turn.answer_id), "client_msg_id": client_msg_id})
        if turn.repeated:  # the client re-sent a question we have: give it that answer again
            await answer_slot_release(slot)
            await self._watch(str(turn.conversation_id))
            await self._replay(turn.answer_id, after_seq=0)
            return
        broadcast = ConversationBroadcast(
            turn.conversation_id, turn.answer_id, direct=self._deliver, origin=self.channel_name
        )
        self.answering.add(broadcast)
        self.in_flight[str(turn.answer_id)] = slot
        answering = pipeline.launch_turn(turn, broadcast)
        answering.add_done_callback(lambda _: self._answered(broadcast))
        release_when_done(answering, slot)  # also when this socket is gone by then
        # After the launch, not before: the answer need not wait for these round trips to Redis.
        # This socket gets its own answer directly; the watch is for what others send to it.
        await self._watch(str(turn.conversation_id))

    async def on_feedback(self, content: dict[str, Any]) -> None:
        value = content.get("value")
        if value not in Feedback.Value.values:
            raise FrameError("invalid_feedback", "'value' must be 'up' or 'down'.")
        await db_call(services.feedback_set)(
            visitor_id=self.visitor_id, message_id=content.get("message_id"), value=value,
            reason=_optional_str(content, "reason"), comment=_optional_str(content, "comment", 2000),
        )

    async def on_handoff(self, content: dict[str, Any]) -> None:
        conversation_id = content.get("conversation_id") or self.conversation_id
        if conversation_id is None:
            raise FrameError("no_conversation", "Ask a question first; then a human can take over.")
        conversation = await self._conversation(conversation_id)
        await db_call(services.conversation_handoff)(conversation=conversation)
        await self._watch(str(conversation.pk))
        self.with_person.add(str(conversation.pk))
        await self.send_json(await db_call(services.handoff_frame)(conversation_id=conversation.pk))

    async def on_resume(self, content: dict[str, Any]) -> None:
        after_seq = content.get("after_seq", 0)
        if not isinstance(after_seq, int) or isinstance(after_seq, bool) or after_seq < 0:
            raise FrameError("invalid_frame", "'after_seq' must be a whole number of at least 0.")
        conversation = await self._conversation(content.get("conversation_id"))
        message = await db_call(message_get_in_conversation)(
            conversation=conversation, message_id=content.get("message_id")
        )
        if message is None or message.role != Message.Role.ASSISTANT:
            raise FrameError("message_not_found", "No such answer in this conversation.")
        await self._watch(str(conversation.pk))
        await self._replay(message.pk, after_seq)

    async def on_typing(self, content: dict[str, Any]) -> None:
        """The visitor is typing: the trainer holding the conversation sees it (nothing is stored)."""
        if self.conversation_id is not None and self.conversation_id in self.with_person:
            await self.channel_layer.group_send(
                LIVE_GROUP, {"type": "live.changed", "conversation_id": self.conversation_id, "event": "typing"})

    async def on_watch(self, content: dict[str, Any]) -> None:
        """A page (re)opened on a conversation: follow it, hear whether a person holds it, and get the
        person's replies it may have missed (the widget drops those it shows already)."""
        conversation = await self._conversation(content.get("conversation_id"))
        await self._watch(str(conversation.pk))
        frame = await db_call(services.handoff_frame)(conversation_id=conversation.pk)
        if frame["status"] in ("waiting", "taken"):
            self.with_person.add(str(conversation.pk))
            await self.send_json(frame)
        for reply in await db_call(services.human_replies)(conversation_id=conversation.pk):
            await self.send_json(reply)

    handlers = {"message": on_message, "feedback": on_feedback, "handoff": on_handoff, "resume": on_resume,
                "typing": on_typing, "watch": on_watch}

    # --- helpers ---------------------------------------------------------------------------------

    async def _open_turn(self, content: dict[str, Any], client_msg_id: str) -> tuple[pipeline.Turn, AnswerSlot]:
        """Admit and store the question. Raises RateLimited or another CodedError (nothing stored),
        PersonHolds (stored, for a person), or NotStored when the database or Redis failed."""
        slot: AnswerSlot | None = None
        try:
            slot = await self._admit(client_msg_id)
            turn = await pipeline.open_turn(
                visitor_id=self.visitor_id, conversation_id=content.get("conversation_id"),
                text=content.get("text"), client_msg_id=client_msg_id, channel=Conversation.Channel.WIDGET,
            )
        except Exception as exc:
            if slot is not None:
                await answer_slot_release(slot)
            if isinstance(exc, CodedError | pipeline.PersonHolds):
                raise
            logger.exception("a question could not be stored")
            raise NotStored() from exc
        return turn, slot

    def _answered(self, broadcast: ConversationBroadcast) -> None:
        self.answering.discard(broadcast)
        self.in_flight.pop(str(broadcast.message_id), None)

    async def _admit(self, client_msg_id: str) -> AnswerSlot:
        """Count a question against this socket's, the visitor's and the address's limits, and take the
        visitor's one answer in flight. Raises RateLimited."""
        self.messages.hit("messages")
        if self.in_flight:
            raise RateLimited("An answer is still on its way; send this when it is done.", 2)
        # A re-sent question holds the slot under its own client_msg_id, so it is let through.
        return await message_admit(visitor_id=self.visitor_id, address=self.address,
                                   holder=client_msg_id or uuid.uuid4().hex)

    async def _conversation(self, conversation_id: object) -> Conversation:
        conversation = await db_call(conversation_get_for_visitor)(
            visitor_id=self.visitor_id, conversation_id=conversation_id
        )
        if conversation is None:
            raise FrameError("conversation_not_found", "No such conversation.")
        return conversation

    async def _watch(self, conversation_id: str) -> None:
        """Follow the conversation: registered as a watcher first, then in its group (the order
        ConversationBroadcast relies on to send nothing that a resuming socket could miss)."""
        self.conversation_id = conversation_id
        if conversation_id not in self.conversations_watched:
            self.conversations_watched.add(conversation_id)
            await watchers_add(conversation_id)
            await self.channel_layer.group_add(conversation_group(conversation_id), self.channel_name)

    async def _replay(self, message_id: uuid.UUID, after_seq: int) -> None:
        """Send what the client missed. Joined the group first, so nothing falls in between;
        whatever arrives twice is dropped by seq in _deliver."""
        mid = str(message_id)
        self.sent_seq[mid] = after_seq  # the client asks again for everything after after_seq
        self.ended.discard(mid)
        tokens = await stream_log_after(message_id, after_seq)
        message = await db_call(Message.objects.get)(pk=message_id)
        if message.status == Message.Status.HELD:  # still with a trainer: its text is not the visitor's yet
            await self._deliver({"type": "held", "message_id": mid})
            return
        if not tokens and after_seq == 0 and message.text and message.status != Message.Status.STREAMING:
            tokens = [(1, message.text)]  # the token log expired; the whole text is one token
        for seq, text in tokens:
            await self._deliver({"type": "token", "message_id": mid, "seq": seq, "text": text})
        if message.status == Message.Status.COMPLETE:
            await self._deliver({
                "type": "end", "message_id": mid, "sources": message.sources, "confidence": message.confidence,
                "reuse": message.reuse, "latency_ms": message.latency_ms,
            })
        elif message.status == Message.Status.FAILED:
            await self._deliver({
                "type": "error", "code": "generation_failed", "message": "This answer failed.", "message_id": mid,
            })

    async def chat_frames(self, event: dict[str, Any]) -> None:
        """Frames of this conversation from the channel layer (answers asked on other sockets)."""
        if event.get("origin") == self.channel_name:
            return  # this socket asked: it got them directly
        for frame in event["frames"]:
            await self._deliver(frame)

    async def _deliver(self, frame: dict[str, Any]) -> None:
        """Send a frame once: replays and live frames may overlap, seq and end decide."""
        mid = frame.get("message_id", "")
        if frame["type"] == "token":
            if frame["seq"] <= self.sent_seq.get(mid, 0):
                return
            self.sent_seq[mid] = frame["seq"]
        elif frame["type"] in ("end", "error") and mid:
            if mid in self.ended:
                return
            self.ended.add(mid)
        if frame["type"] in ("end", "error", "held") and mid in self.in_flight:
            # Free before the client hears the answer is over: its next question may follow at once.
            await answer_slot_release(self.in_flight.pop(mid))
        await self.send_json(frame)


class LiveConsumer(AsyncJsonWebsocketConsumer):
    """`/ws/live/`: the live conversations page of a signed-in trainer follows every handoff's changes."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        allowed = user is not None and user.is_active and user.is_staff
        if not allowed or not await db_call(user.has_perm)("review.view_handoff"):
            await self.close(code=4403)
            return
        await self.channel_layer.group_add(LIVE_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(LIVE_GROUP, self.channel_name)

    async def live_changed(self, event: dict[str, Any]) -> None:
        await self.send_json({"conversation_id": event["conversation_id"], "event": event["event"]})
