"""A cap on the HTTP requests one ASGI process serves at once, so public endpoints cannot take the database
connections the chat pipeline needs.

Django runs each synchronous view on a thread of its own, and each thread holds a connection from the
pool while it works: without a cap, a few dozen parallel requests to a public endpoint hold the whole
pool, and the pipeline's database threads (CHAT_DB_THREADS) wait for a connection until their questions
fail. With at most HTTP_CONCURRENCY requests in Django at once, and HTTP_CONCURRENCY + CHAT_DB_THREADS
below the pool's size (settings.py checks it), the pipeline always finds its connections. A request that
waits longer than HTTP_QUEUE_SECONDS for its turn gets 503 with `retry_after`, not a long hang.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from typing import Any

from django.conf import settings

Scope = dict[str, Any]


class HttpConcurrencyLimit:
    def __init__(self, app: Any) -> None:
        self.app = app
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary())

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        slots = self._slots.get(loop)
        if slots is None:
            slots = self._slots[loop] = asyncio.Semaphore(settings.HTTP_CONCURRENCY)
        return slots

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        slots = self._semaphore()
        try:
            await asyncio.wait_for(slots.acquire(), settings.HTTP_QUEUE_SECONDS)
        except TimeoutError:
            await _busy(send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            slots.release()


async def _busy(send: Any) -> None:
    body = json.dumps({"code": "busy", "message": "The server is busy; try again shortly.", "retry_after": 1})
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1")]})
    await send({"type": "http.response.body", "body": body.encode()})
