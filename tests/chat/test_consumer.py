"""The websocket protocol, through the real ASGI application and the Redis channel layer."""

import asyncio
import json
import uuid

import pytest
from channels.db import database_sync_to_async as in_db
from channels.testing import WebsocketCommunicator

from chat.models import Conversation, Feedback, Message
from chat.visitors import ticket_issue, visitor_id_from_token, visitor_token_issue
from config.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)
TIMEOUT = 10


async def connect(token=None):
    """A socket of the token's visitor (a new visitor's without one), opened with a ticket as the widget does."""
    token = token or visitor_token_issue()[1]
    ticket = await in_db(ticket_issue)(visitor_id=visitor_id_from_token(token))
    communicator = WebsocketCommunicator(application, f"/ws/chat/?ticket={ticket}")
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    return communicator


async def receive_until_end(communicator, message_id=None):
    frames = []
    while True:
        frame = await communicator.receive_json_from(timeout=TIMEOUT)
        frames.append(frame)
        if frame["type"] in ("end", "error") and (message_id is None or frame.get("message_id") == message_id):
            return frames


async def ask_and_finish(communicator, text):
    """Ask a question and read its answer to the end; returns the `start` frame."""
    await communicator.send_json_to({"type": "message", "text": text})
    start = await communicator.receive_json_from(timeout=TIMEOUT)
    await receive_until_end(communicator)
    return start


def token_text(frames):
    return "".join(f["text"] for f in frames if f["type"] == "token")


async def test_a_question_streams_start_tokens_and_end(kb):
    ws = await connect()
    await ws.send_json_to({"type": "message", "text": "How do I do a barbell squat?", "client_msg_id": "c1"})
    start = await ws.receive_json_from(timeout=TIMEOUT)
    assert start["type"] == "start" and uuid.UUID(start["conversation_id"]) and uuid.UUID(start["message_id"])
    frames = await receive_until_end(ws)
    tokens = [f for f in frames if f["type"] == "token"]
    assert [f["seq"] for f in tokens] == list(range(1, len(tokens) + 1))
    end = frames[-1]
    assert end["type"] == "end" and end["message_id"] == start["message_id"]
    assert set(end) == {"type", "message_id", "sources", "confidence", "reuse", "latency_ms"}
    assert end["sources"] and set(end["sources"][0]) == {"title", "url", "chunk_id", "score"}
    answer = await in_db(Message.objects.get)(pk=start["message_id"])
    assert answer.text == token_text(frames) and answer.status == Message.Status.COMPLETE
    await ws.disconnect()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("this is not json", "invalid_json"),
        (json.dumps([1, 2]), "invalid_frame"),
        (json.dumps({"type": "dance"}), "unknown_type"),
        (json.dumps({"text": "no type"}), "unknown_type"),
        (json.dumps({"type": "message", "text": "   "}), "empty_text"),
        (json.dumps({"type": "message"}), "empty_text"),
        (json.dumps({"type": "message", "text": 42}), "empty_text"),
        (json.dumps({"type": "message", "text": "x" * 4001}), "text_too_long"),
        (json.dumps({"type": "message", "text": "hi", "conversation_id": "not-a-uuid"}), "conversation_not_found"),
        (json.dumps({"type": "message", "text": "hi", "conversation_id": str(uuid.uuid4())}), "conversation_not_found"),
        (json.dumps({"type": "message", "text": "hi", "client_msg_id": 7}), "invalid_frame"),
        (json.dumps({"type": "feedback", "message_id": str(uuid.uuid4()), "value": "up"}), "message_not_found"),
        (json.dumps({"type": "feedback", "message_id": "x", "value": "meh"}), "invalid_feedback"),
        (json.dumps({"type": "handoff"}), "no_conversation"),
        (json.dumps({"type": "resume", "conversation_id": str(uuid.uuid4()), "message_id": "x"}),
         "conversation_not_found"),
        (json.dumps({"type": "resume", "after_seq": -1}), "invalid_frame"),
    ],
)
async def test_a_bad_frame_gets_an_error_frame_and_the_socket_stays_open(db, raw, code):
    ws = await connect()
    await ws.send_to(text_data=raw)
    frame = await ws.receive_json_from(timeout=TIMEOUT)
    assert frame["type"] == "error" and frame["code"] == code and frame["message"]
    await ws.send_to(text_data="still there?")  # the same socket still answers
    assert (await ws.receive_json_from(timeout=TIMEOUT))["code"] == "invalid_json"
    await ws.disconnect()


async def test_an_idle_socket_stays_usable(kb):
    """Regression: with redis-py 8's default 5 s socket timeout the channel layer dropped idle sockets."""
    ws = await connect()
    await asyncio.sleep(6)
    await ws.send_json_to({"type": "message", "text": "How do I do a plank?"})
    assert (await ws.receive_json_from(timeout=TIMEOUT))["type"] == "start"
    assert (await receive_until_end(ws))[-1]["type"] == "end"
    await ws.disconnect()


async def test_a_bad_frame_stores_nothing(db):
    ws = await connect()
    await ws.send_json_to({"type": "message", "text": "x" * 4001})
    await ws.receive_json_from(timeout=TIMEOUT)
    assert await in_db(Message.objects.count)() == 0
    await ws.disconnect()


async def test_another_visitors_conversation_is_not_found(kb):
    owner = await connect()
    start = await ask_and_finish(owner, "How do I do a plank?")
    intruder = await connect()
    await intruder.send_json_to({"type": "message", "text": "hi", "conversation_id": start["conversation_id"]})
    assert (await intruder.receive_json_from(timeout=TIMEOUT))["code"] == "conversation_not_found"
    await intruder.send_json_to({"type": "resume", "conversation_id": start["conversation_id"],
                                 "message_id": start["message_id"], "after_seq": 0})
    assert (await intruder.receive_json_from(timeout=TIMEOUT))["code"] == "conversation_not_found"
    await intruder.send_json_to({"type": "feedback", "message_id": start["message_id"], "value": "down"})
    assert (await intruder.receive_json_from(timeout=TIMEOUT))["code"] == "message_not_found"
    await owner.disconnect()
    await intruder.disconnect()


async def test_feedback_and_handoff_are_stored(kb):
    ws = await connect()
    start = await ask_and_finish(ws, "How do I do a plank?")
    await ws.send_json_to(
        {"type": "feedback", "message_id": start["message_id"], "value": "down", "reason": "too short"}
    )
    await ws.send_json_to({"type": "handoff"})
    frame = await ws.receive_json_from(timeout=TIMEOUT)
    assert (frame["type"], frame["status"]) == ("handoff", "waiting")
    feedback = await in_db(Feedback.objects.get)(message_id=start["message_id"])
    assert (feedback.value, feedback.reason) == ("down", "too short")
    conversation = await in_db(Conversation.objects.get)(pk=start["conversation_id"])
    assert conversation.status == Conversation.Status.HANDOFF
    await ws.disconnect()


async def test_a_resent_client_msg_id_replays_the_same_answer(kb):
    token = visitor_token_issue()[1]
    ws = await connect(token)
    await ws.send_json_to({"type": "message", "text": "How do I do a plank?", "client_msg_id": "same"})
    start = await ws.receive_json_from(timeout=TIMEOUT)
    first = await receive_until_end(ws)
    await ws.send_json_to({"type": "message", "text": "How do I do a plank?", "client_msg_id": "same",
                           "conversation_id": start["conversation_id"]})
    again = await ws.receive_json_from(timeout=TIMEOUT)
    assert again["message_id"] == start["message_id"]
    replay = await receive_until_end(ws)
    assert token_text(replay) == token_text(first)
    assert await in_db(Message.objects.filter(role="user").count)() == 1
    await ws.disconnect()


async def test_an_answer_is_finished_and_stored_when_the_client_disconnects_mid_answer(kb, online):
    online.script.answers.append(" ".join(f"word{i}" for i in range(30)))
    online.script.tokens_per_s = 60
    ws = await connect()
    await ws.send_json_to({"type": "message", "text": "How do I do a barbell squat?"})
    start = await ws.receive_json_from(timeout=TIMEOUT)
    assert (await ws.receive_json_from(timeout=TIMEOUT))["type"] == "token"
    await ws.disconnect()

    answer = await _wait_for_status(start["message_id"], Message.Status.COMPLETE)
    assert answer.text.split() == [f"word{i}" for i in range(30)]


async def test_resume_replays_the_missed_tokens_of_a_finished_answer(kb):
    token = visitor_token_issue()[1]
    ws = await connect(token)
    await ws.send_json_to({"type": "message", "text": "How do I do a barbell squat?"})
    start = await ws.receive_json_from(timeout=TIMEOUT)
    frames = await receive_until_end(ws)
    await ws.disconnect()

    again = await connect(token)
    await again.send_json_to({"type": "resume", "conversation_id": start["conversation_id"],
                              "message_id": start["message_id"], "after_seq": 3})
    replay = await receive_until_end(again)
    tokens = [f for f in frames if f["type"] == "token"]
    assert [f["seq"] for f in replay if f["type"] == "token"] == [f["seq"] for f in tokens[3:]]
    assert token_text(frames[:3]) + token_text(replay) == token_text(frames)
    assert replay[-1] == frames[-1]  # the same end frame, sources and confidence
    await again.disconnect()


async def test_resume_during_streaming_continues_without_gaps_or_duplicates(kb, online):
    words = [f"w{i}" for i in range(40)]
    online.script.answers.append(" ".join(words))
    online.script.tokens_per_s = 80
    token = visitor_token_issue()[1]
    ws = await connect(token)
    await ws.send_json_to({"type": "message", "text": "How do I do a barbell squat?"})
    start = await ws.receive_json_from(timeout=TIMEOUT)
    seen = [await ws.receive_json_from(timeout=TIMEOUT) for _ in range(3)]
    await ws.disconnect()

    again = await connect(token)
    await again.send_json_to({"type": "resume", "conversation_id": start["conversation_id"],
                              "message_id": start["message_id"], "after_seq": 3})
    rest = await receive_until_end(again)
    seqs = [f["seq"] for f in rest if f["type"] == "token"]
    assert seqs == list(range(4, 41))
    assert (token_text(seen) + token_text(rest)).split() == words
    assert rest[-1]["type"] == "end"
    await again.disconnect()


async def test_a_second_tab_following_the_conversation_sees_the_next_answer_live(kb, online):
    """Batches go to the conversation's group only while another socket follows it: here one does."""
    online.script.tokens_per_s = 80
    token = visitor_token_issue()[1]
    first = await connect(token)
    opened = await ask_and_finish(first, "How do I do a barbell squat?")
    second = await connect(token)  # the other tab catches up on the first answer, then follows
    await second.send_json_to({"type": "resume", "conversation_id": opened["conversation_id"],
                               "message_id": opened["message_id"], "after_seq": 0})
    await receive_until_end(second)

    await first.send_json_to({"type": "message", "text": "And how deep should I go?",
                              "conversation_id": opened["conversation_id"]})
    start = await first.receive_json_from(timeout=TIMEOUT)
    asked = await receive_until_end(first, start["message_id"])
    followed = await receive_until_end(second, start["message_id"])
    assert token_text(followed) == token_text(asked) and token_text(asked)
    assert [f["seq"] for f in followed if f["type"] == "token"] == [f["seq"] for f in asked if f["type"] == "token"]
    assert followed[-1]["type"] == "end"
    await first.disconnect()
    await second.disconnect()


async def test_a_failed_generation_sends_an_error_frame(kb, online):
    online.script.model_faults["fake-model"] = "500"
    ws = await connect()
    await ws.send_json_to({"type": "message", "text": "How do I do a barbell squat?"})
    start = await ws.receive_json_from(timeout=TIMEOUT)
    frame = await ws.receive_json_from(timeout=TIMEOUT)
    assert frame == {"type": "error", "code": "llm_unavailable", "message": frame["message"],
                     "message_id": start["message_id"]}
    assert (await in_db(Message.objects.get)(pk=start["message_id"])).status == Message.Status.FAILED
    assert await in_db(Message.objects.filter(role="user", text="How do I do a barbell squat?").exists)()
    await ws.disconnect()


async def _wait_for_status(message_id, status, seconds=10.0):
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        message = await in_db(Message.objects.get)(pk=message_id)
        if message.status == status:
            return message
        assert asyncio.get_running_loop().time() < deadline, f"answer still {message.status}"
        await asyncio.sleep(0.05)


async def test_answers_hand_their_database_connections_back_to_the_pool(kb):
    """Regression: connections opened in a turn's thread stayed checked out; ~20 answers
    exhausted the pool and every later question hung for the pool timeout."""
    from django.db import connections

    pool = connections["default"].pool
    for _ in range(4):
        ws = await connect()
        await ws.send_json_to({"type": "message", "text": "How do I do a plank?"})
        await receive_until_end(ws)
        await ws.disconnect()
    await asyncio.sleep(0.2)
    stats = pool.get_stats()
    # The test's own thread may hold one connection; the four answers must hold none.
    assert stats["pool_size"] - stats.get("pool_available", 0) <= 2
