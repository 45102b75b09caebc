"""Limits on the websocket: frames per window per socket, visitor and address; one answer in flight."""

import asyncio
import json
import time

import pytest
from channels.db import database_sync_to_async as in_db
from channels.testing import WebsocketCommunicator

from chat.limits import client_address
from chat.visitors import ticket_issue, visitor_token_issue
from config.asgi import application
from tests.chat.test_consumer import TIMEOUT, ask_and_finish, connect, receive_until_end

pytestmark = pytest.mark.django_db(transaction=True)
WINDOW = 3


@pytest.fixture
def short_window(settings):
    settings.CHAT_RATE_WINDOW_SECONDS = WINDOW
    return settings


async def next_window():
    await asyncio.sleep(WINDOW - time.time() % WINDOW + 0.1)


def slow_answers(online):
    online.script.answers.append(" ".join(f"word{i}" for i in range(40)))
    online.script.tokens_per_s = 20  # two seconds of streaming: the flood arrives while it is in flight


async def test_a_flood_of_a_thousand_questions_starts_one_answer_and_the_socket_stays_open(kb, online, short_window):
    slow_answers(online)
    ws = await connect()
    for i in range(1000):
        await ws.send_to(text_data=json.dumps({"type": "message", "text": f"How do I squat? {i}",
                                               "client_msg_id": f"m{i}"}))
    limited, ended = [], False
    while len(limited) < 999 or not ended:
        frame = await ws.receive_json_from(timeout=TIMEOUT)
        if frame["type"] == "error":
            limited.append(frame)
        ended = ended or frame["type"] == "end"
    assert {f["code"] for f in limited} == {"rate_limited"}
    assert all(isinstance(f["retry_after"], int) and f["retry_after"] >= 1 for f in limited)
    assert len(online.script.requests) == 1  # no answer beyond the one in flight

    await next_window()
    await ask_and_finish(ws, "How do I do a plank?")  # the window passed: the visitor asks again
    assert len(online.script.requests) == 2
    await ws.disconnect()


async def test_a_second_socket_of_the_visitor_waits_for_the_answer_in_flight(kb, online, short_window):
    slow_answers(online)
    token = visitor_token_issue()[1]
    first, second = await connect(token), await connect(token)
    await first.send_json_to({"type": "message", "text": "How do I squat?", "client_msg_id": "a"})
    start = await first.receive_json_from(timeout=TIMEOUT)
    await second.send_json_to({"type": "message", "text": "How do I do a plank?", "client_msg_id": "b"})
    frame = await second.receive_json_from(timeout=TIMEOUT)
    assert (frame["code"], frame["client_msg_id"]) == ("rate_limited", "b") and frame["retry_after"] >= 1

    await receive_until_end(first, start["message_id"])
    await ask_and_finish(second, "How do I do a plank?")  # the answer ended: the slot is free at once
    assert len(online.script.requests) == 2
    for ws in (first, second):
        await ws.disconnect()


async def test_a_visitors_questions_are_counted_across_its_sockets(kb, short_window):
    short_window.CHAT_VISITOR_MESSAGE_LIMIT = 2
    await next_window()
    token = visitor_token_issue()[1]
    first, second = await connect(token), await connect(token)
    await ask_and_finish(first, "How do I do a plank?")
    await ask_and_finish(second, "How do I squat?")
    await second.send_json_to({"type": "message", "text": "And a push-up?"})
    assert (await second.receive_json_from(timeout=TIMEOUT))["code"] == "rate_limited"
    for ws in (first, second):
        await ws.disconnect()


async def _connect_from(address: str) -> WebsocketCommunicator:
    visitor_id = visitor_token_issue()[0]
    ticket = await in_db(ticket_issue)(visitor_id=visitor_id)
    socket = WebsocketCommunicator(application, f"/ws/chat/?ticket={ticket}")
    socket.scope["client"] = [address, 50000]  # as the ASGI server fills it in
    assert (await socket.connect(timeout=TIMEOUT))[0]
    return socket


async def test_questions_from_one_address_are_counted_across_visitors(kb, short_window):
    short_window.CHAT_IP_MESSAGE_LIMIT = 2
    await next_window()
    sockets = [await _connect_from("203.0.113.7") for _ in range(3)]
    await ask_and_finish(sockets[0], "How do I do a plank?")
    await ask_and_finish(sockets[1], "How do I squat?")
    await sockets[2].send_json_to({"type": "message", "text": "And a push-up?"})
    assert (await sockets[2].receive_json_from(timeout=TIMEOUT))["code"] == "rate_limited"
    elsewhere = await _connect_from("198.51.100.1")
    await ask_and_finish(elsewhere, "How do I do a push-up?")
    for ws in (*sockets, elsewhere):
        await ws.disconnect()


def test_a_forwarded_for_header_the_client_wrote_does_not_change_its_address():
    scope = {"client": ["10.0.0.2", 4000], "headers": [(b"x-forwarded-for", b"1.2.3.4, 203.0.113.9")]}
    assert client_address(scope) == "10.0.0.2"
    assert client_address({"client": None, "headers": []}) is None
