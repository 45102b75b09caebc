"""Limits on the chat socket: how many frames it may send, and one answer in flight at a time.

Per socket the counts live in memory (a socket lives on one process). Per visitor and per address
they live in Redis, so they hold across ASGI processes and a visitor's second socket shares them.
A limited frame gets an `error` frame `rate_limited` with `retry_after` seconds (chat/consumers.py).

Windows are fixed (a counter per window): one Redis round trip per message frame, and a burst at a
window's edge gets at most twice the limit through, which is enough to keep cost bounded.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings

from .errors import CodedError

logger = logging.getLogger(__name__)
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()


def redis_client() -> aioredis.Redis:
    """The Redis client of the running event loop (a client is bound to the loop it was made on)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = aioredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    return client


class RateLimited(CodedError):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__("rate_limited", message)
        self.retry_after = max(1, retry_after)


def _window() -> tuple[int, int]:
    """The current window's number and the seconds left in it."""
    length = settings.CHAT_RATE_WINDOW_SECONDS
    now = time.time()
    return int(now // length), max(1, math.ceil(length - now % length))


@dataclass
class SocketWindow:
    """At most `limit` events per window on one socket, counted in memory."""

    limit: int
    window: int = -1
    count: int = 0

    def hit(self, what: str) -> None:
        window, left = _window()
        if window != self.window:
            self.window, self.count = window, 0
        self.count += 1
        if self.count > self.limit:
            raise RateLimited(f"Too many {what} on this connection; wait {left} s.", left)


def client_address(scope: Mapping[str, Any]) -> str | None:
    """The visitor's address: the connecting peer's. Behind a proxy, the ASGI server puts the visitor's
    address there from the proxy's X-Forwarded-For (uvicorn's FORWARDED_ALLOW_IPS names the proxies it
    believes), as REST's rate limits read it (config/throttling.py): one way to know who is asking."""
    client = scope.get("client")
    return str(client[0]) if client else None


# KEYS: the visitor's counter, the address's counter, the visitor's answer slot.
# ARGV: visitor limit, address limit (0: no address known), the slot's holder, the slot's lifetime,
# the counters' lifetime. Returns -1 (over a limit), 0 (an answer in flight), 1 (slot taken),
# 2 (the slot's holder asked again: a re-sent question, which never starts a second answer).
_ADMIT = """
local over = false
local visitor = redis.call('INCR', KEYS[1])
if visitor == 1 then redis.call('EXPIRE', KEYS[1], ARGV[5]) end
if visitor > tonumber(ARGV[1]) then over = true end
if tonumber(ARGV[2]) > 0 then
  local address = redis.call('INCR', KEYS[2])
  if address == 1 then redis.call('EXPIRE', KEYS[2], ARGV[5]) end
  if address > tonumber(ARGV[2]) then over = true end
end
if over then return -1 end
local held = redis.call('GET', KEYS[3])
if not held then
  redis.call('SET', KEYS[3], ARGV[3], 'EX', ARGV[4])
  return 1
end
if held == ARGV[3] then return 2 end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class AnswerSlot:
    """The visitor's one answer in flight; `taken` False: a re-sent question whose answer holds it already."""

    visitor_id: str
    holder: str
    taken: bool


def _slot_key(visitor_id: str) -> str:
    return f"spotter:answering:{visitor_id}"


async def message_admit(*, visitor_id: str, address: str | None, holder: str) -> AnswerSlot:
    """Count a message frame against the visitor's and the address's limits and take the visitor's
    answer slot, in one round trip. Raises RateLimited."""
    window, left = _window()
    keys = [f"spotter:limit:visitor:{visitor_id}:{window}", f"spotter:limit:address:{address}:{window}",
            _slot_key(visitor_id)]
    args = [settings.CHAT_VISITOR_MESSAGE_LIMIT, settings.CHAT_IP_MESSAGE_LIMIT if address else 0, holder,
            settings.CHAT_ANSWER_SLOT_SECONDS, settings.CHAT_RATE_WINDOW_SECONDS * 2]
    verdict = int(await redis_client().eval(_ADMIT, len(keys), *keys, *args))
    if verdict < 0:
        raise RateLimited(f"Too many messages; wait {left} s.", left)
    if verdict == 0:
        raise RateLimited("An answer is still on its way; send this when it is done.", 2)
    return AnswerSlot(visitor_id, holder, taken=verdict == 1)


async def answer_slot_release(slot: AnswerSlot) -> None:
    """Never raises: a slot that cannot be freed now frees itself after CHAT_ANSWER_SLOT_SECONDS."""
    if not slot.taken:
        return
    try:
        await redis_client().eval(_RELEASE, 1, _slot_key(slot.visitor_id), slot.holder)
    except Exception:
        logger.exception("could not free the answer slot of visitor %s", slot.visitor_id)


_releasing: set[asyncio.Task[None]] = set()


def release_when_done(task: asyncio.Future[Any], slot: AnswerSlot) -> None:
    """Free the slot when the answer ends, whether or not the socket that asked is still open."""

    def done(_: asyncio.Future[Any]) -> None:
        release = asyncio.get_running_loop().create_task(answer_slot_release(slot))
        _releasing.add(release)
        release.add_done_callback(_releasing.discard)

    task.add_done_callback(done)
