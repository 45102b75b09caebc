"""Another visitor's ids get nothing anywhere: every visitor endpoint answers 404 (never 403, which would
confirm the id exists) and changes nothing."""

import uuid

import pytest
from channels.db import database_sync_to_async as in_db

from chat.models import Conversation, Feedback, Message, VisitorProfile
from review.models import Handoff
from tests.chat.test_api import ask, visitor_client
from tests.chat.test_consumer import TIMEOUT, ask_and_finish, connect

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_rest_endpoint_refuses_another_visitors_ids(kb):
    alice, mallory = visitor_client(), visitor_client()
    conversation, response = ask(alice, "I am 34 years old. How do I do a plank?")
    cid, answer_id = conversation["id"], response.json()["answer"]["id"]
    attempts = {
        "conversation": mallory.get(f"/api/v1/conversations/{cid}/"),
        "messages": mallory.get(f"/api/v1/conversations/{cid}/messages/"),
        "ask in it": mallory.post(f"/api/v1/conversations/{cid}/messages/", {"text": "hi"}, format="json"),
        "handoff": mallory.post(f"/api/v1/conversations/{cid}/handoff/"),
        "feedback": mallory.post(f"/api/v1/messages/{answer_id}/feedback/", {"value": "down"}, format="json"),
        "unknown id": mallory.get(f"/api/v1/conversations/{uuid.uuid4()}/"),
    }
    for name, attempt in attempts.items():
        assert attempt.status_code == 404, name
        assert attempt.json()["code"] in ("conversation_not_found", "message_not_found", "not_found"), name
    assert Message.objects.count() == 2 and not Feedback.objects.exists() and not Handoff.objects.exists()
    assert Conversation.objects.get(pk=cid).status != Conversation.Status.HANDOFF

    # The profile endpoint takes no id: each visitor sees and deletes only their own.
    assert mallory.get("/api/v1/profile/").json()["facts"] == []
    assert mallory.delete("/api/v1/profile/").status_code == 204
    assert VisitorProfile.objects.count() == 1 and alice.get("/api/v1/profile/").json()["facts"]


def test_a_forged_or_foreign_token_is_refused(kb):
    forged = visitor_client()
    forged.credentials(HTTP_X_VISITOR_TOKEN="not-a-token")
    refused = forged.get("/api/v1/profile/")
    assert refused.status_code == 401 and refused.json()["code"]


async def test_every_websocket_frame_refuses_another_visitors_ids(kb):
    owner = await connect()
    start = await ask_and_finish(owner, "How do I do a plank?")
    cid, mid = start["conversation_id"], start["message_id"]
    intruder = await connect()
    attempts = {
        "message": ({"type": "message", "text": "hi", "conversation_id": cid}, "conversation_not_found"),
        "resume": ({"type": "resume", "conversation_id": cid, "message_id": mid, "after_seq": 0},
                   "conversation_not_found"),
        "watch": ({"type": "watch", "conversation_id": cid}, "conversation_not_found"),
        "handoff": ({"type": "handoff", "conversation_id": cid}, "conversation_not_found"),
        "feedback": ({"type": "feedback", "message_id": mid, "value": "down"}, "message_not_found"),
    }
    for name, (frame, code) in attempts.items():
        await intruder.send_json_to(frame)
        assert (await intruder.receive_json_from(timeout=TIMEOUT))["code"] == code, name
    assert await intruder.receive_nothing(timeout=0.3)  # none of the owner's frames reached the intruder
    assert not await in_db(Feedback.objects.exists)() and not await in_db(Handoff.objects.exists)()
    assert await in_db(Message.objects.count)() == 2
    await owner.disconnect()
    await intruder.disconnect()
