"""Context within the token budget: summary folding over a long conversation, the visitor's
profile in the context, and the profile API (see, edit, delete)."""

import pytest
from channels.db import database_sync_to_async as in_db
from rest_framework.test import APIClient

from chat import memory
from chat.models import CacheEntry, Conversation, Message, VisitorFact, VisitorProfile
from tests.chat.test_pipeline import ask

pytestmark = pytest.mark.django_db(transaction=True)

QUESTIONS = [
    "How do I do a barbell squat?", "How do I do a plank?", "How do I do a pull-up?", "How do I do crunches?",
    "How do I do a goblet squat?", "How do I do a Romanian deadlift?", "How do I do push-ups?",
    "How do I do a bench press?", "How do I do a bicep curl?", "How do I do a calf raise?",
]


async def test_forty_turns_stay_within_the_budget_and_early_facts_stay_reachable(kb, settings):
    settings.CHAT_CONTEXT_TOKEN_BUDGET = 900
    settings.CHAT_HISTORY_TURNS = 4
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the summary task runs in-process, as the worker would
    settings.OFFLINE_ANSWER_SENTENCES = 8  # answers as long as a model's, so the history grows as it would
    first, _ = await ask("I have a bad left knee. How do I do a barbell squat?", visitor="dana")
    conversation_id = first.conversation_id
    for n in range(19):
        await ask(f"{QUESTIONS[n % len(QUESTIONS)]} (set {n})", conversation_id=conversation_id, visitor="dana")

    answers = await in_db(list)(Message.objects.filter(conversation_id=conversation_id, role="assistant")
                                .order_by("sequence"))
    assert len(answers) == 20  # 40 messages
    assert all(0 < a.context_tokens <= 900 for a in answers)
    assert answers[-1].full_history_tokens > 2 * 900  # what sending everything would have needed
    assert answers[-1].context_tokens / answers[-1].full_history_tokens < 0.35
    conversation = await in_db(Conversation.objects.get)(pk=conversation_id)
    assert conversation.summary and conversation.summary_through > 0
    remembered = await in_db(list)(VisitorFact.objects.filter(profile__visitor_id="dana").values_list("label", "value"))
    assert remembered == [("limits", "I have a bad left knee.")]


async def test_the_profile_and_the_summary_reach_the_model(kb, online, settings):
    settings.CHAT_HISTORY_TURNS = 2
    first, _ = await ask("I'm a beginner and I only have dumbbells. How do I do a goblet squat?", visitor="erin")
    for question in QUESTIONS[:2]:
        await ask(question, conversation_id=first.conversation_id, visitor="erin")

    messages = online.script.requests[-1]["messages"]
    data, question = messages[-1]["content"].split("</reference_data>\n\n")  # user-role data, then the question
    assert question == QUESTIONS[1]
    assert "I'm a beginner and I only have dumbbells." in data
    summary = data.split("<conversation_summary>")[1].split("</conversation_summary>")[0]
    assert "goblet squat" in summary
    # Only the last two messages verbatim after the system prompt, then the data with the question.
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]


async def test_answers_are_cached_for_opening_questions_only(kb):
    first, _ = await ask("How do I do a plank?", visitor="finn")
    await ask("And how long should I hold it?", conversation_id=first.conversation_id, visitor="finn")
    questions = await in_db(list)(CacheEntry.objects.values_list("question", flat=True))
    assert questions == ["How do I do a plank?"]


def visitor_client() -> tuple[APIClient, str]:
    client = APIClient()
    body = client.post("/api/v1/visitors/").json()
    client.credentials(HTTP_X_VISITOR_TOKEN=body["token"])
    return client, body["visitor_id"]


def test_a_visitor_sees_edits_and_deletes_their_profile(db):
    client, visitor_id = visitor_client()
    empty = client.get("/api/v1/profile/").json()
    assert empty["facts"] == [] and {"label": "goal", "title": "Goal", "many": False} in empty["labels"]

    memory.profile_remember(visitor_id=visitor_id, text="I have a bad left knee.")
    response = client.patch("/api/v1/profile/", {"facts": [{"label": "goal", "value": "run 10 km"}]}, format="json")
    assert response.status_code == 200
    facts = {f["label"]: f for f in response.json()["facts"]}
    assert facts["goal"]["value"] == "run 10 km" and facts["goal"]["title"] == "Goal"
    assert facts["limits"]["value"] == "I have a bad left knee." and facts["limits"]["learned_at"]

    knee = facts["limits"]["id"]
    response = client.patch("/api/v1/profile/", {"facts": [{"id": knee, "value": "I have a bad right knee."},
                                                           {"id": facts["goal"]["id"], "value": ""}]}, format="json")
    assert [(f["label"], f["value"]) for f in response.json()["facts"]] == [("limits", "I have a bad right knee.")]

    response = client.put("/api/v1/profile/", {"facts": [{"label": "level", "value": "beginner"}]}, format="json")
    assert [f["value"] for f in response.json()["facts"]] == ["beginner"]  # PUT replaces

    assert client.delete("/api/v1/profile/").status_code == 204
    assert not VisitorProfile.objects.filter(visitor_id=visitor_id).exists()
    other, _ = visitor_client()
    assert other.get("/api/v1/profile/").json()["facts"] == []  # never another visitor's


def test_bad_profile_input_gets_a_clear_error(db):
    client, _ = visitor_client()
    response = client.patch("/api/v1/profile/", {"language": "x" * 17, "facts": "not a list"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and {"language", "facts"} <= set(response.json()["details"])
    for change in ({"label": "shoe size", "value": "44"}, {"value": "no id, no label"},
                   {"label": "goal", "value": "x" * 301}):
        assert client.patch("/api/v1/profile/", {"facts": [change]}, format="json").status_code == 400
    assert APIClient().get("/api/v1/profile/").status_code in (401, 403)


def test_a_visitor_cannot_touch_another_visitors_fact(db):
    alice, alice_id = visitor_client()
    memory.profile_remember(visitor_id=alice_id, text="I have a bad left knee.")
    fact = alice.get("/api/v1/profile/").json()["facts"][0]
    mallory, _ = visitor_client()

    response = mallory.patch("/api/v1/profile/", {"facts": [{"id": fact["id"], "value": ""}]}, format="json")
    assert response.status_code == 400 and "facts" in response.json()["details"]
    assert alice.get("/api/v1/profile/").json()["facts"] == [fact]


async def test_with_an_llm_the_summary_is_written_by_the_model(kb, online, settings):
    settings.CHAT_HISTORY_TURNS = 2
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.STANDALONE_LLM = False  # the answers below go to the answer calls, none to a rewrite
    online.script.answers.extend(["Squat deep [1].", "Hold it [1].", "Pull up [1].",
                                  "The visitor is a beginner with dumbbells; asked about squats."])
    first, _ = await ask("I'm a beginner with dumbbells. How do I squat?", visitor="gus")
    for question in ("How do I do a plank?", "How do I do a pull-up?"):
        await ask(question, conversation_id=first.conversation_id, visitor="gus")

    conversation = await in_db(Conversation.objects.get)(pk=first.conversation_id)
    assert conversation.summary == "The visitor is a beginner with dumbbells; asked about squats."
    assert conversation.summary_through == 2  # the first question and its answer
    summary_request = online.script.requests[-1]["messages"]
    assert "Keep every fact the visitor stated" in summary_request[0]["content"]
    assert "I'm a beginner with dumbbells." in summary_request[1]["content"]


async def test_the_conversation_takes_the_language_of_its_questions(kb):
    turn, _ = await ask("Wie mache ich eine Kniebeuge mit der Langhantel?", visitor="hans")
    conversation = await in_db(Conversation.objects.get)(pk=turn.conversation_id)
    assert conversation.language == "de"
    entry = await in_db(CacheEntry.objects.get)()
    assert entry.language == "de"
