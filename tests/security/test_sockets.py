"""Sturdy sockets: crafted frames, a failing database or Redis and re-sent questions never close the
socket, lose a question silently or answer it twice; guarding a message takes linear time."""

import asyncio
import json
import threading
from re import _parser as sre_parse  # type: ignore[attr-defined]

import pytest
import redis.asyncio as aioredis
from channels.db import database_sync_to_async as in_db
from django.db import OperationalError, close_old_connections

from chat import guard, limits, services
from chat.models import Conversation, Message
from chat.safety import pii
from chat.visitors import visitor_token_issue
from tests.chat.test_consumer import TIMEOUT, ask_and_finish, connect, receive_until_end

pytestmark = pytest.mark.django_db(transaction=True)


async def still_answers(ws):
    start = await ask_and_finish(ws, "How do I do a plank?")
    assert start["type"] == "start"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (json.dumps({"type": []}), "unknown_type"),
        (json.dumps({"type": {"a": 1}}), "unknown_type"),
        ("[" * 15000 + "]" * 15000, "invalid_json"),  # deeper than the JSON parser recurses
        (json.dumps({"type": "message", "text": "x" * 40000}), "frame_too_large"),
        (json.dumps({"type": "message", "text": {"nested": [1, 2]}}), "empty_text"),
        (json.dumps({"type": "message", "text": "hi", "conversation_id": ["x"]}), "conversation_not_found"),
        (json.dumps({"type": "resume", "conversation_id": {}, "message_id": []}), "conversation_not_found"),
        (json.dumps({"type": "feedback", "message_id": {}, "value": "up"}), "message_not_found"),
    ],
)
async def test_a_crafted_frame_gets_an_error_frame_and_the_socket_stays_open(kb, raw, code):
    ws = await connect()
    await ws.send_to(text_data=raw)
    frame = await ws.receive_json_from(timeout=TIMEOUT)
    assert (frame["type"], frame["code"]) == ("error", code) and frame["message"]
    await still_answers(ws)
    await ws.disconnect()


async def test_the_database_down_at_the_start_of_a_turn_says_the_question_was_not_stored(kb, monkeypatch):
    def database_down(**kwargs):
        raise OperationalError("connection to server failed: Connection refused")

    real_turn_start = services.turn_start
    monkeypatch.setattr(services, "turn_start", database_down)
    ws = await connect()
    question = {"type": "message", "text": "How do I do a plank?", "client_msg_id": "q1"}
    await ws.send_json_to(question)
    frame = await ws.receive_json_from(timeout=TIMEOUT)
    assert (frame["code"], frame["stored"], frame["client_msg_id"]) == ("internal_error", False, "q1")
    assert not await in_db(Message.objects.exists)()

    monkeypatch.setattr(services, "turn_start", real_turn_start)  # the database is back: sent again, answered
    await ws.send_json_to(question)
    assert (await ws.receive_json_from(timeout=TIMEOUT))["type"] == "start"
    assert (await receive_until_end(ws))[-1]["type"] == "end"
    await ws.disconnect()


async def test_redis_down_at_the_start_of_a_turn_says_the_question_was_not_stored(kb, monkeypatch):
    ws = await connect()
    unreachable = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    monkeypatch.setattr(limits, "redis_client", lambda: unreachable)
    await ws.send_json_to({"type": "message", "text": "How do I do a plank?", "client_msg_id": "q1"})
    frame = await ws.receive_json_from(timeout=TIMEOUT)
    assert (frame["code"], frame["stored"]) == ("internal_error", False)
    assert not await in_db(Message.objects.exists)()
    monkeypatch.undo()
    await still_answers(ws)
    await ws.disconnect()


async def test_a_resent_first_question_opens_one_conversation_and_one_answer(kb, online):
    token = visitor_token_issue()[1]
    first = await connect(token)
    question = {"type": "message", "text": "How do I do a plank?", "client_msg_id": "first"}
    await first.send_json_to(question)
    opened = await first.receive_json_from(timeout=TIMEOUT)
    asked = await receive_until_end(first)
    await first.disconnect()

    again = await connect(token)  # the widget reconnected before it saw `start`, and sends it again
    await again.send_json_to(question)
    replayed = await again.receive_json_from(timeout=TIMEOUT)
    assert (replayed["conversation_id"], replayed["message_id"]) == (opened["conversation_id"], opened["message_id"])
    assert "".join(f["text"] for f in await receive_until_end(again) if f["type"] == "token") == "".join(
        f["text"] for f in asked if f["type"] == "token")
    assert await in_db(Conversation.objects.count)() == 1
    assert await in_db(Message.objects.filter(role="user").count)() == 1
    assert len(online.script.requests) == 1
    await again.disconnect()


async def test_the_same_first_question_on_two_sockets_at_once_opens_one_conversation(kb, online):
    online.script.tokens_per_s = 40
    token = visitor_token_issue()[1]
    sockets = [await connect(token), await connect(token)]
    question = {"type": "message", "text": "How do I do a plank?", "client_msg_id": "both"}
    await asyncio.gather(*(ws.send_json_to(question) for ws in sockets))
    starts = [await ws.receive_json_from(timeout=TIMEOUT) for ws in sockets]
    assert [s["type"] for s in starts] == ["start", "start"]
    assert starts[0]["message_id"] == starts[1]["message_id"]
    for ws in sockets:
        assert (await receive_until_end(ws, starts[0]["message_id"]))[-1]["type"] == "end"
        await ws.disconnect()
    assert await in_db(Conversation.objects.count)() == 1 and len(online.script.requests) == 1


def test_concurrent_copies_of_a_first_question_store_it_once(transactional_db):
    barrier, results = threading.Barrier(4), []

    def store():
        barrier.wait()
        try:
            results.append(services.turn_start(
                visitor_id="v1", conversation_id=None, channel="widget", text="How do I squat?",
                client_msg_id="same", pii_redacted=False))
        finally:
            close_old_connections()

    threads = [threading.Thread(target=store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and len({r.conversation_id for r in results}) == 1
    assert sorted(r.repeated for r in results) == [False, True, True, True]
    assert Conversation.objects.count() == 1 and Message.objects.filter(role="user").count() == 1


def test_the_same_client_msg_id_of_another_visitor_opens_its_own_conversation(transactional_db):
    opened = [services.turn_start(visitor_id=v, conversation_id=None, channel="widget", text="Hi there",
                                  client_msg_id="1", pii_redacted=False) for v in ("v1", "v2")]
    assert opened[0].conversation_id != opened[1].conversation_id and not any(r.repeated for r in opened)


def _unbounded_repeats(tree) -> list[str]:
    found = []
    for op, arg in tree:
        if op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, sre_parse.POSSESSIVE_REPEAT):
            low, high, inner = arg
            if high == sre_parse.MAXREPEAT:
                found.append(f"{op} {low}..")
            found += _unbounded_repeats(inner)
        elif op == sre_parse.SUBPATTERN:
            found += _unbounded_repeats(arg[-1])
        elif op == sre_parse.BRANCH:
            for branch in arg[1]:
                found += _unbounded_repeats(branch)
        elif op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT):
            found += _unbounded_repeats(arg[1])
    return found


def test_every_guard_pattern_repeats_a_bounded_number_of_times():
    """With every repetition bounded, a match attempt at one position can only look a fixed distance
    ahead, so no crafted text can make a pattern backtrack: scrubbing is linear in the text's length.
    (By hand: the worst crafted 4,000-character messages took 80-115 ms before, at most ~4 ms now.)"""
    patterns = {name: (getattr(pii, name), 0) for name in ("_EMAIL", "_CARD", "_IBAN", "_SSN", "_PHONE", "_STREET")}
    patterns["_INJECTION"] = (guard._INJECTION.pattern, guard._INJECTION.flags)
    for name, (pattern, flags) in patterns.items():
        assert _unbounded_repeats(sre_parse.parse(pattern, flags)) == [], name


@pytest.mark.parametrize("crafted", ["a." * 2000, "1-" * 2000, "1." * 2000, "x@" + "b." * 1999, "a@b" + ".b-" * 1332])
def test_a_crafted_message_is_still_scrubbed(crafted):
    assert guard.guard(crafted).text
    assert guard.guard(f"{crafted[:3000]} write to john.doe@example.com").text.endswith("write to [EMAIL]")
