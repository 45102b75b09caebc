"""Running ORM code from async code: every database step of the pipeline goes through `db_call`.

One mechanism on purpose. The steps use Django's ORM, which is synchronous (its async methods are
thread hops too); an async PostgreSQL pool for the raw SQL of some steps beside it would be a
second way to reach the database, with its own connections, transactions and failure modes.
"""

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

_executor: ThreadPoolExecutor | None = None


def _db_threads() -> ThreadPoolExecutor:
    """CHAT_DB_THREADS threads, each with its own connection from the pool.

    Not Channels' one shared thread: it serialises every query of every chat behind each other.
    Not a thread per call either: many threads only fight over the interpreter. A handful lets
    PostgreSQL work on the other core while Python waits."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=settings.CHAT_DB_THREADS, thread_name_prefix="pipeline-db")
    return _executor


def db_call(function: Callable[..., Any]) -> Callable[..., Any]:
    """`database_sync_to_async` that hands the connection back to the pool inside the call.

    asgiref 3.9+ runs the function inside a copy of the caller's context; Channels' own cleanup
    runs outside it and no longer sees the connection the function opened, which would then stay
    checked out of the pool for good. Closing in here works.
    """

    @functools.wraps(function)
    def closing(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(closing, thread_sensitive=False, executor=_db_threads())
