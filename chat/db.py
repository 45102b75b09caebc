"""Running ORM code from async code."""

import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

_executor: ThreadPoolExecutor | None = None


def _db_threads() -> ThreadPoolExecutor:
    """A few threads, each with its own connection from the pool.

    One shared thread (Channels' default) serialises every query of every chat: at 50 chats a
    second its queue grew without bound, each step waiting ~200 ms. A thread per call (Django's
    default for sync views) measured worse: fifty threads fighting for the GIL. A handful lets the
    database work on the other core while Python waits (BENCHMARKS.md)."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=settings.CHAT_DB_THREADS, thread_name_prefix="pipeline-db")
    return _executor


def db_call(function: Callable[..., Any]) -> Callable[..., Any]:
    """`database_sync_to_async` that hands the connection back to the pool inside the call.

    asgiref 3.9+ runs the function inside a copy of the caller's context; Channels' own cleanup
    runs outside it and no longer sees the connection the function opened, which then stays
    checked out of the pool for good (one per thread that goes away). Closing in here works.
    """

    @functools.wraps(function)
    def closing(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(closing, thread_sensitive=False, executor=_db_threads())


# --- work alongside, from a database thread ---------------------------------------------------------

_side_executor: ThreadPoolExecutor | None = None


def _side_threads() -> ThreadPoolExecutor:
    """As many as there are database threads: each has at most one piece of work alongside."""
    global _side_executor
    if _side_executor is None:
        _side_executor = ThreadPoolExecutor(max_workers=settings.CHAT_DB_THREADS, thread_name_prefix="pipeline-side")
    return _side_executor


class Alongside:
    """A database call started on another thread (its own connection) while this one goes on:
    PostgreSQL runs the statement on the other core while this thread does its own work."""

    def __init__(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._call = functools.partial(function, *args, **kwargs)
        self._future: Future[Any] = _side_threads().submit(self._closing)

    def _closing(self) -> Any:
        try:
            return self._call()
        finally:
            close_old_connections()

    def result(self) -> Any:
        """Its result; done here instead when no side thread has taken it up yet (never a wait
        in a queue, and no thread ever waits for work queued behind itself)."""
        if self._future.cancel():
            return self._call()
        return self._future.result()

    def abandon(self) -> None:
        """Not needed after all: dropped if it has not started; if it has, it runs to its end."""
        self._future.cancel()
