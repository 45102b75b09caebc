"""Where answer tokens go while they stream.

The socket that asked gets each token directly. The tokens are also appended, in batches, to a
per-message Redis list (so `resume` can replay what a client missed, also after the answer
finished) and sent to the conversation's channel-layer group (so any other socket watching that
conversation, on any ASGI process, gets them): see ConversationBroadcast.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast

import redis.asyncio as aioredis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

logger = logging.getLogger(__name__)
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()


def _redis() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = aioredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    return client


def conversation_group(conversation_id: uuid.UUID | str) -> str:
    return f"conversation.{uuid.UUID(str(conversation_id)).hex}"


def _log_key(message_id: uuid.UUID | str) -> str:
    return f"spotter:stream:{uuid.UUID(str(message_id)).hex}"


def _watchers_key(conversation_id: uuid.UUID | str) -> str:
    return f"spotter:watchers:{uuid.UUID(str(conversation_id)).hex}"


async def watchers_add(conversation_id: uuid.UUID | str) -> None:
    """A socket now follows this conversation (call before joining its group and replaying)."""
    key = _watchers_key(conversation_id)
    async with _redis().pipeline(transaction=False) as pipe:
        pipe.incr(key)
        pipe.expire(key, settings.CHAT_STREAM_LOG_TTL_SECONDS)  # a crashed process's count fades
        await pipe.execute()


async def watchers_remove(conversation_id: uuid.UUID | str) -> None:
    await _redis().decr(_watchers_key(conversation_id))


async def stream_log_append(message_id: uuid.UUID, texts: list[str], conversation_id: uuid.UUID | str) -> int:
    """Append to the message's token log; returns how many sockets follow the conversation, read
    after the append (see ConversationBroadcast for why that order matters)."""
    key = _log_key(message_id)
    async with _redis().pipeline(transaction=False) as pipe:
        if texts:
            pipe.rpush(key, *texts)
            pipe.expire(key, settings.CHAT_STREAM_LOG_TTL_SECONDS)
        pipe.get(_watchers_key(conversation_id))
        results = await pipe.execute()
    return int(results[-1] or 0)


async def stream_log_after(message_id: uuid.UUID | str, after_seq: int) -> list[tuple[int, str]]:
    """Tokens with seq > after_seq; seq N is the Nth element of the list."""
    texts = cast(list[str], await _redis().lrange(_log_key(message_id), after_seq, -1))  # decode_responses
    return [(after_seq + i + 1, text) for i, text in enumerate(texts)]


def push_frames(*, conversation_id: uuid.UUID | str, frames: list[dict[str, Any]]) -> None:
    """Send frames to every socket of the conversation, from synchronous code (a trainer's reply, the
    end of a handoff). Not to the token log: these frames are messages of their own, stored as such."""
    try:
        async_to_sync(get_channel_layer().group_send)(
            conversation_group(conversation_id), {"type": "chat.frames", "frames": frames})
    except Exception:  # stored already: a socket that comes back gets it on `resume` / `watch`
        logger.warning("could not push frames to conversation %s", conversation_id, exc_info=True)


class AnswerSink(Protocol):
    async def token(self, seq: int, text: str) -> None: ...
    async def end(self, frame: dict[str, Any]) -> None: ...
    async def error(self, frame: dict[str, Any]) -> None: ...


Send = Callable[[dict[str, Any]], Awaitable[None]]


class ConversationBroadcast:
    """The websocket sink.

    The socket that asked gets every frame directly, in process. The tokens also go to the Redis
    log (for `resume`) and to the conversation's group (for any other socket watching), both in
    batches of `GROUP_BATCH_SECONDS`: a channel layer that carries every token of many concurrent
    answers overflows its capacity and drops frames, and one Redis round trip per token is CPU
    the first token of the next chat waits for.

    A batch goes to the group only when some socket other than the asking one follows the
    conversation (nearly always none, and the group send, with the asking socket receiving and
    dropping its own frames, is a real share of the server's CPU). Nothing is lost by it: a
    watcher registers before it joins the group and reads the log, and a flush appends to the
    log before it counts watchers, so a batch it did not send is in the log the watcher reads.
    """

    GROUP_BATCH_SECONDS = 0.25  # only resuming sockets wait on it; the asking one gets tokens at once

    def __init__(self, conversation_id: uuid.UUID, message_id: uuid.UUID, *, direct: Send | None = None,
                 origin: str = "") -> None:
        self.group = conversation_group(conversation_id)
        self.conversation_id, self.message_id = conversation_id, message_id
        self.layer = get_channel_layer()
        self.direct, self.origin = direct, origin
        self._pending: list[dict[str, Any]] = []
        self._last_flush = 0.0
        self._lock = asyncio.Lock()  # batches reach the group in order, the end frame last

    def detach(self) -> None:
        """The asking socket went away; the answer goes on for the log and the group."""
        self.direct = None

    async def _send_direct(self, frame: dict[str, Any]) -> None:
        if self.direct is None:
            return
        try:
            await self.direct(frame)
        except Exception:  # the socket closed under us: keep answering for the others
            self.direct = None

    async def _flush(self) -> None:
        async with self._lock:
            frames, self._pending = self._pending, []
            self._last_flush = time.monotonic()
            if not frames:
                return
            texts = [f["text"] for f in frames if f["type"] == "token"]
            watchers = await stream_log_append(self.message_id, texts, self.conversation_id)
            if watchers > (1 if self.direct is not None else 0):
                await self.layer.group_send(
                    self.group, {"type": "chat.frames", "frames": frames, "origin": self.origin}
                )

    async def token(self, seq: int, text: str) -> None:
        frame = {"type": "token", "message_id": str(self.message_id), "seq": seq, "text": text}
        await self._send_direct(frame)
        self._pending.append(frame)
        if time.monotonic() - self._last_flush >= self.GROUP_BATCH_SECONDS:
            await self._flush()

    async def end(self, frame: dict[str, Any]) -> None:
        await self._send_direct(frame)
        self._pending.append(frame)
        await self._flush()

    async def error(self, frame: dict[str, Any]) -> None:
        await self.end(frame)


class NullSink:
    """For callers that only want the finished answer (REST, benchmarks)."""

    async def token(self, seq: int, text: str) -> None:
        return None

    async def end(self, frame: dict[str, Any]) -> None:
        return None

    async def error(self, frame: dict[str, Any]) -> None:
        return None
