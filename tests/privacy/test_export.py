"""A visitor exports all of its data as JSON, through the API; built through the real pipeline, feedback,
review and monitoring paths (only the Redis-only leftovers of a websocket are made by their own functions)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from rest_framework.test import APIClient

from chat import summaries
from chat.budgets import budget_charge
from chat.limits import message_admit
from chat.models import CacheEntry, Conversation, Message
from chat.streams import stream_log_append, watchers_add
from experiments.models import Arm, Experiment, ShadowAnswer
from monitoring.models import AnswerFact, TopicCluster
from review.models import ApprovedAnswer, EvaluationSet, ReviewItem
from review.services import review_item_approve, review_item_claim
from tests.factories import CacheEntryFactory, PromptVersionFactory, TrainerFactory

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Footprint:
    """A visitor with one of every kind of data, and the ids to look for afterwards."""

    visitor_id: str
    client: APIClient
    conversation_ids: list[uuid.UUID] = field(default_factory=list)
    message_ids: list[uuid.UUID] = field(default_factory=list)
    approved_answer_id: int = 0
    cache_entry_id: int = 0
    review_item_id: int = 0

    @property
    def needles(self) -> set[str]:
        ids = [*self.conversation_ids, *self.message_ids]
        return {self.visitor_id, *(str(i) for i in ids), *(i.hex for i in ids)}


def visitor_client() -> tuple[APIClient, str]:
    client = APIClient()
    body = client.post("/api/v1/visitors/").json()
    client.credentials(HTTP_X_VISITOR_TOKEN=body["token"])
    return client, body["visitor_id"]


def ask(client: APIClient, conversation_id: str, text: str) -> dict:
    response = client.post(f"/api/v1/conversations/{conversation_id}/messages/", {"text": text}, format="json")
    assert response.status_code in (201, 202), response.content
    return response.json()


def wait_for(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def footprint_build(client: APIClient, visitor_id: str) -> Footprint:
    """Two conversations, answered by the pipeline; a thumbs-down, a review item approved into an approved
    answer and an evaluation case, a profile, a summary, a handoff, a cache entry, a shadow answer, a drift
    topic, and the Redis keys a websocket session leaves (stream log, watchers, ticket, limits, budget)."""
    fp = Footprint(visitor_id, client)
    EvaluationSet.objects.create(name="held out", from_approved=True)
    first = client.post("/api/v1/conversations/").json()["id"]
    second = client.post("/api/v1/conversations/").json()["id"]
    turn = ask(client, first, "How do I do a barbell squat?")
    ask(client, first, "And how deep should I go?")
    ask(client, second, "How do I do a plank?")
    answer_id = turn["answer"]["id"]
    feedback = {"value": "down", "reason": "unclear", "comment": "too short"}
    assert client.post(f"/api/v1/messages/{answer_id}/feedback/", feedback, format="json").status_code == 200
    fact = {"facts": [{"label": "goal", "value": "run a marathon"}]}
    assert client.patch("/api/v1/profile/", fact, format="json").status_code == 200
    assert client.post(f"/api/v1/conversations/{second}/handoff/").status_code == 200
    assert summaries.conversation_fold(conversation_id=first, before_sequence=5)  # CHAT_HISTORY_TURNS=2
    fp.conversation_ids = [uuid.UUID(first), uuid.UUID(second)]
    fp.message_ids = list(Message.objects.filter(conversation_id__in=fp.conversation_ids).values_list("pk", flat=True))
    wait_for(lambda: AnswerFact.objects.filter(conversation_id__in=fp.conversation_ids).count() == 3)

    item = ReviewItem.objects.get(message_id=answer_id)
    trainer = TrainerFactory()
    review_item_claim(item=item, user=trainer)
    fp.approved_answer_id = review_item_approve(item=item, reviewer=trainer).pk
    fp.review_item_id = item.pk
    answer = Message.objects.get(pk=answer_id)
    fp.cache_entry_id = (CacheEntry.objects.filter(message=answer).first()
                         or CacheEntryFactory(message=answer, question=answer.reply_to.text)).pk
    _shadow_answer(answer)
    TopicCluster.objects.create(first_seen=answer.created_at, last_seen=answer.created_at, size=1,
                                examples=[answer.reply_to.text], message_ids=[answer.reply_to_id],
                                centroid=[1.0] + [0.0] * 383)
    _websocket_leftovers(fp, answer)
    return fp


def _shadow_answer(answer: Message) -> None:
    version = PromptVersionFactory()
    experiment = Experiment.objects.create(name="tone")
    arm = Arm.objects.create(experiment=experiment, name="friendly", prompt_version=version, shadow=True)
    ShadowAnswer.objects.create(arm=arm, live_message=answer, question=answer.reply_to.text, live_text=answer.text,
                                shadow_text="Squat down slowly.")


def _websocket_leftovers(fp: Footprint, answer: Message) -> None:
    async_to_sync(stream_log_append)(answer.pk, ["Keep ", "your back straight."], answer.conversation_id)
    async_to_sync(watchers_add)(answer.conversation_id)
    async_to_sync(message_admit)(visitor_id=fp.visitor_id, address="203.0.113.9", holder="socket-1")
    budget_charge(visitor_id=fp.visitor_id, tokens=120, cost=Decimal("0.0004"))
    assert fp.client.post("/api/v1/visitors/ticket/").status_code == 201


def visitor_with_everything(settings) -> Footprint:
    settings.CHAT_HISTORY_TURNS = 2  # the first question and answer leave the window: they are summarized
    client, visitor_id = visitor_client()
    return footprint_build(client, visitor_id)


@pytest.fixture
def footprint(kb, settings) -> Footprint:
    return visitor_with_everything(settings)


def test_the_export_holds_every_kind_of_the_visitors_data(footprint):
    response = footprint.client.get("/api/v1/visitors/me/export/")

    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    data = response.json()
    assert data["visitor_id"] == footprint.visitor_id
    assert {c["id"] for c in data["conversations"]} == {str(i) for i in footprint.conversation_ids}
    assert {m["id"] for m in data["messages"]} == {str(i) for i in footprint.message_ids}
    first = next(c for c in data["conversations"] if c["summary"])
    assert "squat" in first["summary"].lower()
    answers = [m for m in data["messages"] if m["role"] == "assistant"]
    assert all(m["timings"] and "confidence" in m and "sources" in m for m in answers)
    assert data["feedback"][0]["value"] == "down" and data["feedback"][0]["comment"] == "too short"
    assert data["profile"]["visitor_id"] == footprint.visitor_id
    assert [f["value"] for f in data["facts"]] == ["run a marathon"]
    assert len(data["handoffs"]) == 1
    items = ReviewItem.objects.filter(message_id__in=footprint.message_ids)
    assert {r["id"]: r["status"] for r in data["review_items"]} == dict(items.values_list("pk", "status"))
    assert "approved" in {r["status"] for r in data["review_items"]}
    assert [a["id"] for a in data["approved_answers"]] == [footprint.approved_answer_id]
    assert len(data["evaluation_cases"]) == 1
    assert footprint.cache_entry_id in [e["id"] for e in data["cache_entries"]]
    assert len(data["cache_votes"]) == 1
    assert len(data["answer_facts"]) == 3
    assert len(data["handoff_facts"]) == 1
    assert len(data["shadow_answers"]) == 1


def test_the_export_leaves_out_trainer_internals_staff_and_vectors(footprint):
    data = footprint.client.get("/api/v1/visitors/me/export/").json()

    allowed = {"id", "message_id", "status", "reason", "reasons", "feedback_reason", "created_at", "decided_at"}
    assert data["review_items"] and all(set(item) <= allowed for item in data["review_items"])
    assert "created_by_id" not in data["approved_answers"][0]
    assert "embedding" not in data["cache_entries"][0]
    assert "question_embedding" not in data["answer_facts"][0]
    assert not any(key.endswith("_original") for rows in data.values() if isinstance(rows, list)
                   for row in rows for key in row)


def test_the_export_holds_nothing_of_another_visitor(footprint):
    other, _ = visitor_client()
    conversation = other.post("/api/v1/conversations/").json()["id"]
    ask(other, conversation, "How do I do a pushup?")

    data = footprint.client.get("/api/v1/visitors/me/export/").json()

    assert conversation not in {c["id"] for c in data["conversations"]}
    assert Conversation.objects.count() == 3 and len(data["conversations"]) == 2
    assert not any(m["text"] == "How do I do a pushup?" for m in data["messages"])


def test_a_new_visitor_exports_an_empty_document(db):
    client, visitor_id = visitor_client()

    data = client.get("/api/v1/visitors/me/export/").json()

    assert data["visitor_id"] == visitor_id and data["profile"] is None
    assert data["conversations"] == [] and data["messages"] == []


def test_the_export_needs_a_visitor_token(db):
    assert APIClient().get("/api/v1/visitors/me/export/").status_code == 401


def test_the_export_and_the_erasure_are_in_the_openapi_schema(db):
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()

    assert "get" in schema["paths"]["/api/v1/visitors/me/export/"]
    assert "delete" in schema["paths"]["/api/v1/visitors/me/"]


def test_approved_answers_from_other_visitors_are_not_exported(footprint):
    ApprovedAnswer.objects.create(question="How do I rest?", answer="Sleep.")

    data = footprint.client.get("/api/v1/visitors/me/export/").json()

    assert [a["id"] for a in data["approved_answers"]] == [footprint.approved_answer_id]

