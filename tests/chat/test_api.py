import uuid

import pytest
from rest_framework.test import APIClient

from chat.models import Feedback, Message

pytestmark = pytest.mark.django_db(transaction=True)


def visitor_client() -> APIClient:
    client = APIClient()
    token = client.post("/api/v1/visitors/").json()["token"]
    client.credentials(HTTP_X_VISITOR_TOKEN=token)
    return client


def ask(client: APIClient, text: str):
    """A new conversation with one question in it: (conversation, the POST response)."""
    conversation = client.post("/api/v1/conversations/").json()
    return conversation, client.post(f"/api/v1/conversations/{conversation['id']}/messages/",
                                     {"text": text}, format="json")


def test_a_visitor_asks_and_gets_the_whole_answer(kb):
    client = visitor_client()
    conversation, response = ask(client, "How do I do a barbell squat?")
    assert response.status_code == 201
    body = response.json()
    assert body["question"]["text"] == "How do I do a barbell squat?"
    assert body["answer"]["status"] == "complete" and "squat" in body["answer"]["text"].lower()
    assert body["answer"]["sources"] and body["answer"]["confidence"] > 0.5

    listed = client.get(f"/api/v1/conversations/{conversation['id']}/messages/").json()
    assert [m["role"] for m in listed] == ["user", "assistant"]


def test_feedback_is_stored_and_can_be_changed(kb):
    client = visitor_client()
    answer = ask(client, "How do I do a plank?")[1].json()["answer"]
    assert client.post(f"/api/v1/messages/{answer['id']}/feedback/", {"value": "up"}, format="json").status_code == 200
    client.post(f"/api/v1/messages/{answer['id']}/feedback/", {"value": "down", "reason": "wrong"}, format="json")
    feedback = Feedback.objects.get(message_id=answer["id"])
    assert (feedback.value, feedback.reason) == ("down", "wrong")


def test_a_visitor_is_denied_another_visitors_conversation(kb):
    alice, mallory = visitor_client(), visitor_client()
    conversation, response = ask(alice, "How do I do a plank?")
    answer = response.json()["answer"]
    for response in (
        mallory.get(f"/api/v1/conversations/{conversation['id']}/"),
        mallory.get(f"/api/v1/conversations/{conversation['id']}/messages/"),
        mallory.post(f"/api/v1/conversations/{conversation['id']}/messages/", {"text": "hi"}, format="json"),
        mallory.post(f"/api/v1/messages/{answer['id']}/feedback/", {"value": "down"}, format="json"),
    ):
        assert response.status_code == 404
        assert response.json()["code"] in ("conversation_not_found", "message_not_found")
    assert Message.objects.count() == 2


def test_requests_without_a_valid_token_are_refused_with_json():
    anonymous = APIClient()
    response = anonymous.post("/api/v1/conversations/")
    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"
    anonymous.credentials(HTTP_X_VISITOR_TOKEN="forged")
    response = anonymous.post("/api/v1/conversations/")
    assert response.status_code == 401 and response.json()["code"] == "authentication_failed"


@pytest.mark.parametrize(("body", "code"), [
    ({"text": ""}, "empty_text"),
    ({"text": "x" * 4001}, "text_too_long"),
    ({}, "invalid"),
])
def test_bad_messages_get_a_400_with_a_stable_code(db, body, code):
    client = visitor_client()
    conversation = client.post("/api/v1/conversations/").json()
    response = client.post(f"/api/v1/conversations/{conversation['id']}/messages/", body, format="json")
    assert response.status_code == 400 and response.json()["code"] == code
    assert Message.objects.count() == 0


def test_a_failed_answer_is_a_502_that_keeps_the_question(kb, online):
    online.script.model_faults["fake-model"] = "500"
    client = visitor_client()
    response = ask(client, "How do I squat?")[1]
    assert response.status_code == 502
    body = response.json()
    assert body["code"] == "llm_unavailable" and body["answer"]["status"] == "failed"
    assert Message.objects.filter(role="user", text="How do I squat?").exists()


def test_unknown_feedback_target_is_a_404(db):
    client = visitor_client()
    response = client.post(f"/api/v1/messages/{uuid.uuid4()}/feedback/", {"value": "up"}, format="json")
    assert response.status_code == 404 and response.json()["code"] == "message_not_found"


def test_handoff_marks_the_conversation(db):
    client = visitor_client()
    conversation = client.post("/api/v1/conversations/").json()
    response = client.post(f"/api/v1/conversations/{conversation['id']}/handoff/")
    assert response.status_code == 200 and response.json()["status"] == "handoff"


def test_the_openapi_schema_and_docs_are_served(db):
    client = APIClient()
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/conversations/{conversation_id}/messages/" in paths
    assert client.get("/api/docs/").status_code == 200


def test_the_widget_config_says_when_offline_mode_is_on(db, settings):
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_API_KEY = ""
    assert APIClient().get("/api/v1/widget/config/").json()["offline"] is True
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"
    assert APIClient().get("/api/v1/widget/config/").json()["offline"] is False
