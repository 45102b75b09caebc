"""A person in the conversation, over real websockets against the real stack: a visitor asks for a
person, the assistant falls silent (websocket and REST alike), a trainer takes over from the live page
and replies, the visitor's sockets get `human` frames, and the trainer hands back or closes."""

from __future__ import annotations

import asyncio
from datetime import time

import pytest
from channels.db import database_sync_to_async as in_db
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.utils import timezone

from chat.management.commands.demo_setup import Command as DemoSetup
from chat.models import Conversation, Message
from chat.selectors import earlier_turns
from chat.visitors import visitor_token_issue
from config.asgi import application
from review.models import Handoff, SupportHours
from tests.chat.test_consumer import TIMEOUT, ask_and_finish, connect, receive_until_end
from tests.factories import AnswerFactory, TrainerFactory

pytestmark = pytest.mark.django_db(transaction=True)


def trainer_client(name: str = "coach", first_name: str = "Sam") -> tuple[Client, object]:
    DemoSetup()._groups()  # the Trainers group's real permissions
    trainer = TrainerFactory.create(username=name, first_name=first_name)
    client = Client()
    client.force_login(trainer)
    return client, trainer


def act(client: Client, conversation_id: str, action: str, **data):
    return client.post(f"/admin/chat/conversation/live/{conversation_id}/", {"action": action, **data})


async def live_socket(client: Client) -> WebsocketCommunicator:
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    headers = [(b"cookie", cookie), (b"origin", b"http://testserver")]
    socket = WebsocketCommunicator(application, "/ws/live/", headers=headers)
    connected, _ = await socket.connect(timeout=TIMEOUT)
    assert connected
    return socket


async def handed_off(ws) -> dict:
    """Ask, read the answer, press "Talk to a person"; returns the `start` frame of the answer."""
    start = await ask_and_finish(ws, "How do I do a plank?")
    await ws.send_json_to({"type": "handoff"})
    frame = await ws.receive_json_from(timeout=TIMEOUT)
    assert (frame["type"], frame["status"]) == ("handoff", "waiting") and frame["message"]
    return start


async def test_asking_for_a_person_silences_the_assistant_and_the_trainer_replies_to_every_socket(kb):
    client, _ = await in_db(trainer_client)()
    live = await live_socket(client)
    token = visitor_token_issue()[1]
    ws = await connect(token)
    start = await handed_off(ws)
    conversation_id = start["conversation_id"]
    assert (await live.receive_json_from(timeout=TIMEOUT))["event"] == "requested"

    await ws.send_json_to({"type": "message", "text": "Are you there?", "conversation_id": conversation_id})
    frame = await ws.receive_json_from(timeout=TIMEOUT)
    assert (frame["type"], frame["status"]) == ("handoff", "waiting")
    assert await ws.receive_nothing(timeout=0.5)  # no start, no tokens: the assistant is silent
    assert (await live.receive_json_from(timeout=TIMEOUT))["event"] == "message"
    await ws.send_json_to({"type": "typing"})
    assert (await live.receive_json_from(timeout=TIMEOUT))["event"] == "typing"

    second = await connect(token)  # another tab of the same visitor follows the conversation
    await second.send_json_to({"type": "resume", "conversation_id": conversation_id,
                               "message_id": start["message_id"], "after_seq": 0})
    await receive_until_end(second)
    page = await in_db(client.get)(f"/admin/chat/conversation/live/?c={conversation_id}")
    assert "Are you there?" in page.content.decode() and "asked for a person" in page.content.decode()

    response = await in_db(act)(client, conversation_id, "reply", text="Hi, Sam here. Keep your hips level.")
    assert response.status_code == 302
    for socket in (ws, second):
        human = await socket.receive_json_from(timeout=TIMEOUT)
        assert (human["type"], human["agent"]) == ("human", "Sam")
        assert human["text"] == "Hi, Sam here. Keep your hips level."
    stored = await in_db(Message.objects.get)(pk=human["message_id"])
    assert stored.role == Message.Role.HUMAN
    handoff = await in_db(Handoff.objects.get)(conversation_id=conversation_id)
    assert handoff.status == Handoff.Status.TAKEN and handoff.first_reply_at is not None
    for socket in (ws, second, live):
        await socket.disconnect()


async def test_the_assistant_stays_silent_over_rest_while_a_person_holds_the_conversation(kb):
    _, token = visitor_token_issue()
    ws = await connect(token)
    start = await handed_off(ws)
    conversation_id = start["conversation_id"]
    answers = Message.objects.filter(conversation_id=conversation_id, role="assistant")
    count = await in_db(answers.count)()

    response = await in_db(Client().post)(
        f"/api/v1/conversations/{conversation_id}/messages/", {"text": "Hello? Anyone?"},
        content_type="application/json", HTTP_X_VISITOR_TOKEN=token)

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["answer"] is None and body["handoff"]["status"] == "waiting"
    assert body["question"]["text"] == "Hello? Anyone?"
    assert await in_db(answers.count)() == count
    await ws.disconnect()


async def test_handing_back_lets_the_assistant_answer_again_and_closing_ends_it(kb):
    client, _ = await in_db(trainer_client)()
    ws = await connect()
    start = await handed_off(ws)
    conversation_id = start["conversation_id"]
    await in_db(act)(client, conversation_id, "take")
    taken = await in_db(Handoff.objects.get)(conversation_id=conversation_id)
    assert taken.status == Handoff.Status.TAKEN

    await in_db(act)(client, conversation_id, "return")
    frame = await ws.receive_json_from(timeout=TIMEOUT)
    assert (frame["type"], frame["status"]) == ("handoff", "returned")
    again = await ask_and_finish(ws, "And a side plank?")
    assert again["type"] == "start"

    await ws.send_json_to({"type": "handoff", "conversation_id": conversation_id})
    assert (await ws.receive_json_from(timeout=TIMEOUT))["status"] == "waiting"
    await in_db(act)(client, conversation_id, "close", resolved="yes")
    frame = await ws.receive_json_from(timeout=TIMEOUT)
    assert (frame["type"], frame["status"]) == ("handoff", "closed")
    closed = await in_db(Handoff.objects.filter(conversation_id=conversation_id).latest)("requested_at")
    assert closed.resolved is True
    assert (await in_db(Conversation.objects.get)(pk=conversation_id)).status == Conversation.Status.CLOSED
    await ws.disconnect()


async def test_a_second_trainer_cannot_reply_in_a_conversation_another_took_over(kb):
    first, _ = await in_db(trainer_client)("coach", "Sam")
    second, _ = await in_db(trainer_client)("other", "Kim")
    ws = await connect()
    start = await handed_off(ws)
    conversation_id = start["conversation_id"]
    await in_db(act)(first, conversation_id, "take")

    response = await in_db(act)(second, conversation_id, "reply", text="Kim here")
    await asyncio.sleep(0.2)

    assert response.status_code == 302 and await ws.receive_nothing(timeout=0.5)
    assert not await in_db(Message.objects.filter(conversation_id=conversation_id, role="human").exists)()
    await ws.disconnect()


async def test_a_question_that_asks_for_a_person_goes_to_one(db):
    ws = await connect()
    await ws.send_json_to({"type": "message", "text": "I want to speak to a real person please"})
    frame = await ws.receive_json_from(timeout=TIMEOUT)
    assert (frame["type"], frame["status"]) == ("handoff", "waiting")
    handoff = await in_db(Handoff.objects.get)()
    assert handoff.reason == Handoff.Reason.ASKED and "real person" in handoff.detail
    assert not await in_db(Message.objects.filter(role="assistant").exists)()
    await ws.disconnect()


async def test_outside_support_hours_the_visitor_is_told_when_someone_will_answer(kb):
    tomorrow = (timezone.now().weekday() + 1) % 7  # open only tomorrow: closed now
    await in_db(SupportHours.objects.create)(weekday=tomorrow, opens=time(9), closes=time(17))
    ws = await connect()
    await ask_and_finish(ws, "How do I do a plank?")
    await ws.send_json_to({"type": "handoff"})
    frame = await ws.receive_json_from(timeout=TIMEOUT)
    assert frame["status"] == "waiting" and "09:00" in frame["message"]
    await ws.disconnect()


async def test_a_visitor_back_after_the_trainers_reply_gets_it_and_the_handoff_state_on_watch(kb):
    client, _ = await in_db(trainer_client)()
    _, token = visitor_token_issue()
    ws = await connect(token)
    start = await handed_off(ws)
    await ws.disconnect()  # the page closed
    await in_db(act)(client, start["conversation_id"], "reply", text="Sam here: still there?")

    back = await connect(token)
    await back.send_json_to({"type": "watch", "conversation_id": start["conversation_id"]})
    state = await back.receive_json_from(timeout=TIMEOUT)
    reply = await back.receive_json_from(timeout=TIMEOUT)

    assert (state["type"], state["status"], state["agent"]) == ("handoff", "taken", "Sam")
    assert (reply["type"], reply["text"]) == ("human", "Sam here: still there?")
    await in_db(act)(client, start["conversation_id"], "reply", text="And now live.")
    assert (await back.receive_json_from(timeout=TIMEOUT))["text"] == "And now live."
    await back.disconnect()


def test_after_a_hand_back_the_assistant_reads_what_the_person_said(db):
    answer = AnswerFactory.create()
    reply = Message.objects.create(conversation=answer.conversation, sequence=answer.sequence + 1,
                                   role=Message.Role.HUMAN, text="Sam here: rest 90 seconds.", model="human:Sam")

    turns = earlier_turns(conversation_id=answer.conversation_id, before_sequence=reply.sequence + 1)

    assert [m.role for m in turns] == ["user", "assistant", "human"]
