"""Structured logs: one answer followed by its ids, from the websocket frame that asked (or the HTTP
request) through the pipeline's database threads to the Celery tasks it enqueued, in a real worker.
The lines are formatted by the real settings.LOGGING; none of them holds a question or an answer."""

from __future__ import annotations

import asyncio
import json
import logging
import logging.config
import time
from collections.abc import Iterator
from copy import deepcopy

import pytest
import websockets
from celery.contrib.testing.worker import start_worker
from celery.utils.log import ColorFormatter
from django.test import AsyncClient
from pythonjsonlogger.json import JsonFormatter

from chat.visitors import ticket_issue, visitor_id_from_token, visitor_token_issue
from config.celery import app as celery_app
from config.logging import bind, logging_config
from tests.chat.test_consumer import connect, receive_until_end

pytestmark = pytest.mark.django_db(transaction=True)
QUESTIONS = ["How do I do a barbell squat?", "How do I do a plank?", "How do I do a pull-up?"]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def parsed(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def log_lines(settings) -> Iterator[_Lines]:
    """What the console would print under settings.LOGGING (the real filter and JSON formatter)."""
    collected = _Lines()
    config = deepcopy(settings.LOGGING)
    console = config["handlers"]["console"]
    config["handlers"]["console"] = {"()": lambda: collected, "formatter": console["formatter"],
                                     "filters": console["filters"]}
    logging.config.dictConfig(config)
    yield collected
    logging.config.dictConfig(settings.LOGGING)


@pytest.fixture
def worker(transactional_db) -> Iterator[None]:
    """A Celery worker on the test Redis, in a thread: it has a context of its own, so the ids its
    tasks log can only have come in the tasks' headers. Ask for it before `log_lines`: a starting worker
    configures logging."""
    celery_app.control.purge()  # what earlier tests enqueued is not this test's to run
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        yield


async def _lines_until(log_lines: _Lines, found, seconds: float = 15) -> list[dict]:
    deadline = time.monotonic() + seconds
    while not (lines := [line for line in log_lines.parsed() if found(line)]):
        assert time.monotonic() < deadline, "the expected log lines never came"
        await asyncio.sleep(0.1)
    return lines


def _summary_done(line: dict) -> bool:
    return line["logger"] == "celery.app.trace" and "chat.tasks.conversation_summarize" in line["message"] \
        and "succeeded" in line["message"]


async def test_an_answer_is_followed_from_its_frame_to_the_celery_task_it_enqueued(kb, online, settings, worker,
                                                                                    log_lines):
    settings.CHAT_HISTORY_TURNS = 2  # the third turn folds the first into the summary, in a task
    ws = await connect()
    conversation_id, answers, texts = None, [], []
    for question in QUESTIONS:
        await ws.send_json_to({"type": "message", "text": question, "conversation_id": conversation_id})
        start = await ws.receive_json_from(timeout=10)
        conversation_id = start["conversation_id"]
        answers.append(start["message_id"])
        frames = await receive_until_end(ws, start["message_id"])
        assert frames[-1]["type"] == "end"
        texts.append("".join(f["text"] for f in frames if f["type"] == "token"))
    await ws.disconnect()

    tasks = await _lines_until(log_lines, _summary_done)
    lines = log_lines.parsed()
    # Each answer's lines in the web process (its cost, written on a database thread) name its frame.
    asked_by = {line["answer_id"]: line["request_id"] for line in lines if line["logger"] == "chat.llm.pricing"}
    assert set(asked_by) == set(answers) and len(set(asked_by.values())) == 3  # one request id a frame
    for task in tasks:
        assert task.get("conversation_id") == conversation_id and task.get("answer_id") in answers
        assert task.get("request_id") == asked_by[task["answer_id"]]
    raw = "\n".join(log_lines.lines)
    assert not any(text in raw for text in QUESTIONS + texts)


async def test_an_http_request_is_named_in_its_response_and_its_log_lines(kb, online, log_lines):
    client, visitor = AsyncClient(), {"X-Visitor-Token": visitor_token_issue()[1]}
    conversation = (await client.post("/api/v1/conversations/", headers=visitor)).json()

    response = await client.post(f"/api/v1/conversations/{conversation['id']}/messages/",
                                 {"text": QUESTIONS[0]}, content_type="application/json",
                                 headers={**visitor, "X-Request-ID": "lb-7f3a.42"})
    assert response.status_code == 201 and response["X-Request-ID"] == "lb-7f3a.42"
    answer_id = response.json()["answer"]["id"]
    cost = [line for line in log_lines.parsed() if line["logger"] == "chat.llm.pricing"]
    assert [(line["request_id"], line["answer_id"]) for line in cost] == [("lb-7f3a.42", answer_id)]
    assert cost[0]["conversation_id"] == conversation["id"]

    # A header that is not a sane id is replaced; the line Django writes after the response names it too.
    missing = await client.get("/api/v1/conversations/00000000-0000-0000-0000-000000000000/",
                               headers={**visitor, "X-Request-ID": "x" * 500})
    request_id = missing["X-Request-ID"]
    assert missing.status_code == 404 and len(request_id) == 32 and request_id != "x" * 500
    assert [line["request_id"] for line in log_lines.parsed() if line["logger"] == "django.request"] == [request_id]
    assert QUESTIONS[0] not in "\n".join(log_lines.lines)


async def test_the_handshake_line_holds_neither_the_visitor_token_nor_the_address(live_asgi, log_lines):
    handshakes = logging.getLogger("uvicorn.error")
    level, token = handshakes.level, visitor_token_issue()[1]
    handshakes.setLevel(logging.INFO)  # the test server runs at WARNING
    try:
        url = live_asgi.url.replace("http://", "ws://")
        ticket = ticket_issue(visitor_id=visitor_id_from_token(token))
        async with websockets.connect(f"{url}/ws/chat/?ticket={ticket}") as socket:
            await socket.send('{"type": "typing"}')  # admitted: a refused ticket closes the socket at once
    finally:
        handshakes.setLevel(level)
    accepted = [line for line in log_lines.parsed() if "[accepted]" in line["message"]]
    assert [line["message"] for line in accepted] == ['- - "WebSocket /ws/chat/?..." [accepted]']
    assert token not in "\n".join(log_lines.lines) and "127.0.0.1" not in "\n".join(log_lines.lines)
    assert ticket not in "\n".join(log_lines.lines)


def test_celery_keeps_the_json_lines_of_settings_logging(settings):
    type(celery_app.log)._setup = False  # as a worker or beat starting up
    try:
        celery_app.log.setup(loglevel="INFO")
        formatters = [type(handler.formatter) for handler in logging.getLogger().handlers]
        assert JsonFormatter in formatters and ColorFormatter not in formatters
        tasks = logging.getLogger("celery.task")  # the loggers of tasks: up to the root, not to a handler of Celery's
        assert tasks.propagate and all(isinstance(handler, logging.NullHandler) for handler in tasks.handlers)
    finally:
        logging.config.dictConfig(settings.LOGGING)


def test_text_lines_for_a_person_at_a_terminal_carry_the_ids_too(settings, capsys):
    logging.config.dictConfig(logging_config(log_format="text", level="INFO"))
    try:
        with bind(request_id="r1", answer_id="a1"):
            logging.getLogger("chat.pipeline").warning("answer %s failed", "a1")
    finally:
        logging.config.dictConfig(settings.LOGGING)
    line = capsys.readouterr().err.strip()
    assert line.endswith("WARNING chat.pipeline: answer a1 failed request_id=r1 answer_id=a1")
