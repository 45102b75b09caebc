"""Hold before sending, over real websockets against the real stack: an answer below REVIEW_HOLD_BELOW
waits for a trainer (the visitor gets `held`), and reaches the visitor exactly once — approved, edited,
rejected or timed out — in every order of events: live, after a reconnect, while the visitor asks on,
when the hold runs out under a trainer's edit, when two trainers act."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async as in_db
from django.test import Client
from django.utils import timezone

from chat.models import Message
from chat.services import HELD_AND_REJECTED, held_answers_release_due
from chat.visitors import visitor_token_issue
from review.models import ApprovedAnswer, ReviewItem
from review.selectors import review_queue
from review.services import ReviewConflict, review_item_approve, review_item_claim, review_item_reject
from tests.chat.test_consumer import TIMEOUT, connect, receive_until_end, token_text
from tests.factories import TrainerFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def holding(settings):
    settings.REVIEW_HOLD_BELOW = 1.01  # every generated answer is held
    settings.REVIEW_HOLD_SECONDS = 120
    return settings


async def ask_held(ws, text="How do I do a plank?", conversation_id=None) -> dict:
    frame = {"type": "message", "text": text}
    if conversation_id:
        frame["conversation_id"] = conversation_id
    await ws.send_json_to(frame)
    start = await ws.receive_json_from(timeout=TIMEOUT)
    held = await ws.receive_json_from(timeout=TIMEOUT)
    assert (held["type"], held["message_id"]) == ("held", start["message_id"])  # no token before it
    return start


async def approve(message_id, text=None, trainer=None):
    trainer = trainer or await in_db(TrainerFactory.create)()
    item = await in_db(ReviewItem.objects.get)(message_id=message_id)
    await in_db(review_item_claim)(item=item, user=trainer)
    return await in_db(review_item_approve)(item=item, reviewer=trainer, text=text)


async def test_a_held_answer_waits_first_in_the_queue_and_the_trainers_edit_is_sent_live(kb, holding):
    ws = await connect()
    start = await ask_held(ws)
    assert await ws.receive_nothing(timeout=0.3)
    stored = await in_db(Message.objects.get)(pk=start["message_id"])
    assert stored.status == Message.Status.HELD and stored.text  # generated, kept, not sent
    first = await in_db(lambda: review_queue(user=None).first())()
    assert first.message_id == stored.pk and ReviewItem.Reason.HELD in first.reasons

    await approve(start["message_id"], text="Elbows under shoulders, body in one line. (checked)")

    frames = await receive_until_end(ws, start["message_id"])
    assert token_text(frames) == "Elbows under shoulders, body in one line. (checked)"
    assert (await in_db(Message.objects.get)(pk=start["message_id"])).status == Message.Status.COMPLETE
    await ws.disconnect()


async def test_a_visitor_offline_when_the_trainer_approves_gets_the_answer_on_resume(kb, holding):
    _, token = visitor_token_issue()
    ws = await connect(token)
    start = await ask_held(ws)
    await ws.disconnect()

    await approve(start["message_id"])

    back = await connect(token)
    await back.send_json_to({"type": "resume", "conversation_id": start["conversation_id"],
                             "message_id": start["message_id"], "after_seq": 0})
    frames = await receive_until_end(back, start["message_id"])
    stored = await in_db(Message.objects.get)(pk=start["message_id"])
    assert token_text(frames) == stored.text and frames[-1]["type"] == "end"
    await back.disconnect()


async def test_resuming_a_held_answer_says_held_and_shows_nothing_of_it(kb, holding):
    _, token = visitor_token_issue()
    ws = await connect(token)
    start = await ask_held(ws)
    other = await connect(token)
    await other.send_json_to({"type": "resume", "conversation_id": start["conversation_id"],
                              "message_id": start["message_id"], "after_seq": 0})
    assert await other.receive_json_from(timeout=TIMEOUT) == {"type": "held", "message_id": start["message_id"]}
    assert await other.receive_nothing(timeout=0.3)
    response = await in_db(Client().get)(f"/api/v1/conversations/{start['conversation_id']}/messages/",
                                         HTTP_X_VISITOR_TOKEN=token)
    held = next(m for m in response.json() if m["id"] == start["message_id"])
    assert (held["status"], held["text"]) == ("held", "")
    for socket in (ws, other):
        await socket.disconnect()


async def test_the_visitor_asks_on_while_an_answer_is_held_and_both_arrive(kb, holding):
    ws = await connect()
    start = await ask_held(ws)
    holding.REVIEW_HOLD_BELOW = None  # the next answer is sure enough (here: nothing is held any more)

    await ws.send_json_to({"type": "message", "text": "And a side plank?", "conversation_id": start["conversation_id"]})
    second = await ws.receive_json_from(timeout=TIMEOUT)
    assert token_text(await receive_until_end(ws, second["message_id"]))
    await approve(start["message_id"])

    assert token_text(await receive_until_end(ws, start["message_id"]))
    await ws.disconnect()


async def test_a_hold_that_runs_out_sends_the_answer_as_it_was_with_the_note(kb, holding):
    holding.REVIEW_HOLD_SECONDS = 0
    holding.REVIEW_HOLD_NOTE = "(Not checked by a person yet.)"
    ws = await connect()
    start = await ask_held(ws)
    generated = (await in_db(Message.objects.get)(pk=start["message_id"])).text

    assert await in_db(held_answers_release_due)() == 1

    frames = await receive_until_end(ws, start["message_id"])
    assert token_text(frames) == generated + "\n\n(Not checked by a person yet.)"
    assert await in_db(held_answers_release_due)() == 0
    item = await in_db(ReviewItem.objects.get)(message_id=start["message_id"])
    assert ReviewItem.Reason.HELD not in item.reasons and item.learning_value < 100  # no longer urgent
    await ws.disconnect()


async def test_a_hold_that_runs_out_while_a_trainer_edits_is_sent_once_and_the_edit_still_counts(kb, holding):
    ws = await connect()
    start = await ask_held(ws)
    trainer = await in_db(TrainerFactory.create)()
    item = await in_db(ReviewItem.objects.get)(message_id=start["message_id"])
    await in_db(review_item_claim)(item=item, user=trainer)
    await in_db(Message.objects.filter(pk=start["message_id"]).update)(held_until=timezone.now())  # runs out
    await in_db(held_answers_release_due)()
    sent = token_text(await receive_until_end(ws, start["message_id"]))

    await in_db(review_item_approve)(item=item, reviewer=trainer, text="The trainer's better answer.")

    assert await ws.receive_nothing(timeout=0.5)  # the visitor already has it: nothing twice
    assert (await in_db(Message.objects.get)(pk=start["message_id"])).text == sent
    assert await in_db(ApprovedAnswer.objects.filter(answer="The trainer's better answer.").exists)()
    await ws.disconnect()


async def test_two_trainers_acting_at_once_send_the_answer_once(kb, holding):
    ws = await connect()
    start = await ask_held(ws)
    first, second = await in_db(TrainerFactory.create)(), await in_db(TrainerFactory.create)()
    item = await in_db(ReviewItem.objects.get)(message_id=start["message_id"])
    await in_db(review_item_claim)(item=item, user=first)

    with pytest.raises(ReviewConflict):
        await in_db(review_item_approve)(item=item, reviewer=second, text="Second trainer's text")
    await in_db(review_item_approve)(item=item, reviewer=first, text="First trainer's text")

    frames = await receive_until_end(ws, start["message_id"])
    assert token_text(frames) == "First trainer's text"
    assert await ws.receive_nothing(timeout=0.5)
    await ws.disconnect()


async def test_a_rejected_held_answer_is_never_sent_and_the_visitor_is_told(kb, holding):
    ws = await connect()
    start = await ask_held(ws)
    generated = (await in_db(Message.objects.get)(pk=start["message_id"])).text
    trainer = await in_db(TrainerFactory.create)()
    item = await in_db(ReviewItem.objects.get)(message_id=start["message_id"])

    await in_db(review_item_reject)(item=item, reviewer=trainer, reason="wrong exercise")

    frames = await receive_until_end(ws, start["message_id"])
    assert token_text(frames) == HELD_AND_REJECTED and generated not in token_text(frames)
    await ws.disconnect()


async def test_over_rest_a_held_answer_is_accepted_not_shown(kb, holding):
    _, token = visitor_token_issue()
    client = Client()
    opened = await in_db(client.post)("/api/v1/conversations/", HTTP_X_VISITOR_TOKEN=token)
    response = await in_db(client.post)(
        f"/api/v1/conversations/{opened.json()['id']}/messages/", {"text": "How do I do a plank?"},
        content_type="application/json", HTTP_X_VISITOR_TOKEN=token)
    assert response.status_code == 202
    assert (response.json()["answer"]["status"], response.json()["answer"]["text"]) == ("held", "")


async def test_a_hold_does_not_run_out_while_a_person_holds_the_conversation(kb, holding):
    ws = await connect()
    start = await ask_held(ws)
    await ws.send_json_to({"type": "handoff", "conversation_id": start["conversation_id"]})
    assert (await ws.receive_json_from(timeout=TIMEOUT))["type"] == "handoff"
    await in_db(Message.objects.filter(pk=start["message_id"]).update)(held_until=timezone.now())

    assert await in_db(held_answers_release_due)() == 0  # only the person speaks now
    assert (await in_db(Message.objects.get)(pk=start["message_id"])).status == Message.Status.HELD
    await ws.disconnect()
