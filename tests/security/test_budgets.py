"""LLM budgets: a spent budget stops LLM calls; approved and cached answers still come, the rest are
composed from the knowledge base, and the answer says why."""

from decimal import Decimal

import pytest
from channels.db import database_sync_to_async as in_db
from django.contrib.auth.models import User
from django.test import Client

from chat import pipeline
from chat.budgets import NOTICES, SPEND, VISITOR
from chat.models import Conversation, LLMBudget, Message
from chat.streams import NullSink

pytestmark = pytest.mark.django_db(transaction=True)


async def ask(text: str, visitor: str) -> tuple[Message, dict]:
    turn, end = await pipeline.answer(visitor_id=visitor, conversation_id=None, text=text, client_msg_id="",
                                      channel=Conversation.Channel.API, sink=NullSink())
    return await in_db(Message.objects.get)(pk=turn.answer_id), end


def llm_calls(server) -> int:
    return len(server.script.requests)


async def test_a_visitor_over_the_daily_tokens_gets_answers_from_the_knowledge_base_and_is_told(kb, online, settings):
    settings.LLM_VISITOR_DAILY_TOKENS = 1  # the first answer uses it up
    first, _ = await ask("How do I do a barbell squat?", "budget-visitor")
    assert first.model == "fake-model"
    calls = llm_calls(online)

    limited, end = await ask("How do I do a plank?", "budget-visitor")
    assert llm_calls(online) == calls
    assert limited.model == "offline" and limited.text.startswith(NOTICES[VISITOR])
    assert end["type"] == "end" and end["sources"][0]["title"] == "Plank" and limited.text.endswith("[1]")

    other, _ = await ask("How do I do a plank?", "another-visitor")  # the limit is that visitor's alone
    assert other.model == "fake-model" and llm_calls(online) == calls + 1


async def test_a_spent_daily_cap_leaves_cached_answers_and_offline_ones(kb, online, settings):
    settings.LLM_PRICING = {"fake-model": (Decimal("1000"), Decimal("1000"))}  # one answer costs dollars
    settings.LLM_DAILY_SPEND_CAP_USD = 0.5
    first, _ = await ask("How do I do a barbell squat?", "first-visitor")
    assert first.model == "fake-model" and first.cost > Decimal("0.5")
    calls = llm_calls(online)

    cached, end = await ask("How do I do a barbell squat?", "second-visitor")
    assert end["reuse"] != "none" and cached.text == first.text
    composed, _ = await ask("How do I do a plank?", "second-visitor")
    assert composed.model == "offline" and composed.text.startswith(NOTICES[SPEND])
    assert llm_calls(online) == calls

    again, end = await ask("How do I do a plank?", "third-visitor")  # not cached: it was nobody else's answer
    assert end["reuse"] == "none" and again.text.startswith(NOTICES[SPEND])


async def test_an_operator_sets_the_budget_in_admin_over_the_settings(kb, online, settings):
    settings.LLM_VISITOR_DAILY_TOKENS = 0
    await in_db(User.objects.create_superuser)("boss", "boss@example.com", "a-long-password-1")

    def set_in_admin() -> str:
        client = Client()
        client.force_login(User.objects.get(username="boss"))
        page = client.get("/admin/chat/llmbudget/", follow=True)
        assert page.status_code == 200 and b"Generated answers cost" in page.content
        budget = LLMBudget.objects.get()
        saved = client.post(f"/admin/chat/llmbudget/{budget.pk}/change/",
                            {"daily_spend_cap_usd": "", "visitor_daily_tokens": "1"})
        assert saved.status_code == 302
        return page.content.decode()

    await in_db(set_in_admin)()
    await ask("How do I do a barbell squat?", "admin-limited")
    limited, _ = await ask("How do I do a plank?", "admin-limited")
    assert limited.text.startswith(NOTICES[VISITOR])
