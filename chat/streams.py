"""Where answer tokens go while they stream.

Every token is appended to a per-message Redis list (so `resume` can replay what a client
missed, also after the answer finished) and sent to the conversation's channel-layer group
(so every socket watching that conversation, on any ASGI process, gets it live).
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from typing import Any, Protocol

import redis.asyncio as aioredis
from channels.layers import get_channel_layer
from django.conf import settings

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


async def stream_log_append(message_id: uuid.UUID, text: str) -> None:
    key = _log_key(message_id)
    async with _redis().pipeline(transaction=False) as pipe:
        pipe.rpush(key, text)
        pipe.expire(key, settings.CHAT_STREAM_LOG_TTL_SECONDS)
        await pipe.execute()


async def stream_log_after(message_id: uuid.UUID | str, after_seq: int) -> list[tuple[int, str]]:
    """Tokens with seq > after_seq; seq N is the Nth element of the list."""
    texts = await _redis().lrange(_log_key(message_id), after_seq, -1)
    return [(after_seq + i + 1, text) for i, text in enumerate(texts)]


class AnswerSink(Protocol):
    async def token(self, seq: int, text: str) -> None: ...
    async def end(self, frame: dict[str, Any]) -> None: ...
    async def error(self, frame: dict[str, Any]) -> None: ...


class ConversationBroadcast:
    """The websocket sink: Redis log plus a group send to the conversation's sockets."""

    def __init__(self, conversation_id: uuid.UUID, message_id: uuid.UUID) -> None:
        self.group = conversation_group(conversation_id)
        self.message_id = message_id
        self.layer = get_channel_layer()

    async def _send(self, frame: dict[str, Any]) -> None:
        await self.layer.group_send(self.group, {"type": "chat.frame", "frame": frame})

    async def token(self, seq: int, text: str) -> None:
        await stream_log_append(self.message_id, text)
        await self._send({"type": "token", "message_id": str(self.message_id), "seq": seq, "text": text})

    async def end(self, frame: dict[str, Any]) -> None:
        await self._send(frame)

    async def error(self, frame: dict[str, Any]) -> None:
        await self._send(frame)


class NullSink:
    """For callers that only want the finished answer (REST, benchmarks)."""

    async def token(self, seq: int, text: str) -> None:
        return None

    async def end(self, frame: dict[str, Any]) -> None:
        return None

    async def error(self, frame: dict[str, Any]) -> None:
        return None
