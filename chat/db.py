"""Running ORM code from async code."""

import functools
from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async
from django.db import close_old_connections


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

    return database_sync_to_async(closing)
