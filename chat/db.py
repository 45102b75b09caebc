"""Running ORM code from async code: every database step of the pipeline goes through `db_call`.

One mechanism on purpose. The steps use Django's ORM, which is synchronous (its async methods are
thread hops too); an async PostgreSQL pool for the raw SQL of some steps beside it would be a
second way to reach the database, with its own connections, transactions and failure modes.
"""

import asyncio
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.conf import settings
from django.db import close_old_connections

from config.logging import bind, bound_ids

T = TypeVar("T")
_executor: ThreadPoolExecutor | None = None


def _db_threads() -> ThreadPoolExecutor:
    """CHAT_DB_THREADS threads, each with its own connection from the pool.

    A handful: one thread would queue every chat's queries behind each other, and many threads
    only fight over the interpreter; a few let PostgreSQL work on the other core while Python
    waits."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=settings.CHAT_DB_THREADS, thread_name_prefix="pipeline-db")
    return _executor


def db_call(function: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """`function` as a coroutine function that runs it on a database thread and hands the thread's
    connection back to the pool inside the call.

    Not asgiref's `sync_to_async`: it copies the caller's context into the thread on every call,
    CPU spent for nothing here, and Channels' connection cleanup then runs outside that copy, where
    it no longer sees the connection the function opened. Here each database thread keeps its own
    context, and the connection is closed in the thread that opened it. Nothing the caller sets in
    a contextvar reaches the step: pass what it needs as arguments. The one exception is the log ids
    (config/logging.py), handed over by name and bound in the thread for the call, so that the step's
    lines, and the Celery tasks it enqueues, name the request and answer it serves."""

    def closing(log_ids: dict[str, str], /, *args: Any, **kwargs: Any) -> T:
        try:
            with bind(**log_ids):
                return function(*args, **kwargs)
        finally:
            close_old_connections()

    @functools.wraps(function)
    async def call(*args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_db_threads(), functools.partial(closing, bound_ids(), *args, **kwargs))

    return call
