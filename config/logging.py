"""Structured logs: every line names the request, conversation and answer it belongs to.

The ids live in contextvars, bound with `bind(...)` where they become known: the HTTP middleware
(config/request_id.py), each websocket frame (chat/consumers.py), the pipeline once a turn is stored,
`db_call`'s database threads (chat/db.py, by name: those threads keep a context of their own) and each
Celery task (config/celery.py, from the headers its publisher added). `ContextFilter`, on the handler,
copies them onto every record, whichever logger it comes from (Django, uvicorn, Celery, the apps).

Only ids go into these fields and log messages should carry no more: no question or answer text, no
e-mail, no visitor data (ids, codes, counts). Nothing here imports Django: `config.stack` hands the
same configuration to uvicorn before Django is set up.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

REQUEST_ID_HEADER = "X-Request-ID"
FIELDS = ("request_id", "conversation_id", "answer_id")
LOG_FORMATS = ("json", "text")

_ids: dict[str, ContextVar[str | None]] = {name: ContextVar(f"log_{name}", default=None) for name in FIELDS}
# What a proxy or client may hand us as its request id: it is echoed in a header and written to every
# line, so nothing that could break either (no spaces, quotes, newlines) and nothing long.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Record attributes kept out of the JSON: objects (Django's `request`), the arguments Celery attaches to
# its task lines (`data`), uvicorn's coloured copy of the message.
_NOT_LOGGED = ("request", "data", "color_message")


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_accept(incoming: str | None) -> str:
    """The caller's request id when it looks like one, else a new one."""
    if incoming and _SANE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return new_request_id()


def bound_ids() -> dict[str, str]:
    """The ids bound here, by name: what a thread or a task must be given to log as this code does."""
    return {name: value for name, var in _ids.items() if (value := var.get()) is not None}


@contextmanager
def bind(*, request_id: object = None, conversation_id: object = None, answer_id: object = None) -> Iterator[None]:
    """Bind the ids given (None leaves one as it is) for the code inside; restored on the way out."""
    given = {"request_id": request_id, "conversation_id": conversation_id, "answer_id": answer_id}
    tokens: list[tuple[ContextVar[str | None], Token[str | None]]] = [
        (_ids[name], _ids[name].set(str(value))) for name, value in given.items() if value is not None
    ]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Adds the bound ids to each record (absent ones are left out, not written as null)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in bound_ids().items():
            setattr(record, name, value)
        if not hasattr(record, "request_id"):  # Django logs a 4xx/5xx after the middleware has returned
            request_id = getattr(getattr(record, "request", None), "request_id", None)
            if request_id is not None:
                record.request_id = request_id
        return True


class ConnectionLineFilter(logging.Filter):
    """uvicorn's line for each websocket handshake (and each request, when its access log is on) names the
    client's address and the URL with its query string, where the widget's visitor token travels: a
    credential and personal data. Both are replaced; the method, path and status stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        connection_line = record.name.startswith("uvicorn") and str(record.msg).startswith('%s - "')
        if connection_line and isinstance(record.args, tuple):
            record.args = ("-", *(_without_query(arg) for arg in record.args[1:]))
        return True


def _without_query(arg: object) -> object:
    return arg.split("?", 1)[0] + "?..." if isinstance(arg, str) and "?" in arg else arg


class TextFormatter(logging.Formatter):
    """Lines for a person at a terminal: the ids after the message."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        ids = "".join(f" {name}={getattr(record, name)}" for name in FIELDS if hasattr(record, name))
        return super().formatMessage(record) + ids


def _formatter(log_format: str, service: str) -> dict[str, Any]:
    if log_format == "text":
        return {"()": "config.logging.TextFormatter", "fmt": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    from pythonjsonlogger.core import RESERVED_ATTRS

    return {
        "()": "pythonjsonlogger.json.JsonFormatter",
        "fmt": ["levelname", "name", "message", "process"],
        "rename_fields": {"levelname": "level", "name": "logger"},
        "timestamp": "time",
        "static_fields": {"service": service} if service else {},
        "reserved_attrs": [*RESERVED_ATTRS, *_NOT_LOGGED],
    }


def logging_config(*, log_format: str, level: str, service: str = "") -> dict[str, Any]:
    """The `logging.config.dictConfig` of every process: one handler on the root logger, ids on each line.

    uvicorn's loggers propagate to it; `uvicorn.access` is left unnamed so that `--no-access-log`, applied
    by uvicorn before Django configures logging, stays in force."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {LOG_FORMATS}, not {log_format!r}")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"ids": {"()": "config.logging.ContextFilter"},
                    "connections": {"()": "config.logging.ConnectionLineFilter"}},
        "formatters": {"lines": _formatter(log_format, service)},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "lines",
                                 "filters": ["ids", "connections"]}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "httpx": {"level": "WARNING"},
            "httpx2": {"level": "WARNING"},  # the openai client's: a line per LLM call otherwise
            "sentence_transformers": {"level": "WARNING"},
            "uvicorn": {"handlers": [], "propagate": True},
        },
    }
