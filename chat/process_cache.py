"""A value read from the database and kept a few seconds in this process, so that a question costs no
query: the one-row settings an operator edits in admin (the LLM budget, the safety policy)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class ProcessCache(Generic[T]):
    """`read()`'s value, read again once it is `seconds` old. Saving in admin calls `forget()`: the change
    applies at once in that process, and within `seconds` in the others."""

    def __init__(self, read: Callable[[], T], *, seconds: float) -> None:
        self._read = read
        self._seconds = seconds
        self._kept: tuple[float, T] | None = None

    def fresh(self) -> T | None:
        """The kept value while it is young enough, else None: never a query (the event loop asks this)."""
        kept = self._kept
        if kept is not None and time.monotonic() - kept[0] < self._seconds:
            return kept[1]
        return None

    def get(self) -> T:
        kept = self.fresh()
        if kept is not None:
            return kept
        read_at = time.monotonic()
        value = self._read()
        self._kept = (read_at, value)
        return value

    def forget(self) -> None:
        self._kept = None
