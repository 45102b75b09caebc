"""Shadow arms: a sampled share of live answers is answered again in the background by the shadow arm,
with the same question, knowledge and history; the shadow answer is stored for comparison and never sent,
cached, reviewed or counted; a spent budget stops it; the admin shows both answers side by side."""

import uuid
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async as in_db
from django.urls import reverse
from playwright.sync_api import expect

from chat.models import CacheEntry, Message
from chat.services import turn_start
from chat.shadow import shadow_answer_run, shadow_arms_sampling
from experiments.models import Arm, Experiment, ShadowAnswer
from experiments.services import prompt_version_create
from monitoring.models import AnswerFact
from review.models import ReviewItem
from tests.browser import needs_chromium
from tests.chat.test_consumer import connect, receive_until_end, token_text
from tests.chat.test_pipeline import ask
from tests.experiments.builders import running_experiment
from tests.experiments.test_operator_flow import SHOTS, operator_page  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db(transaction=True)

SHADOW_ANSWER = "Shadow: brace, sit back and drive up through the whole foot [1]."
SQUAT = "How do I do a barbell squat?"


def shadow_arm(*, share: float = 1.0, budget: str = "1.00", model: str = "", languages: list[str] | None = None,
               prompt: str = "You are a shadow coach. Cite like [1].") -> Arm:
    """A running experiment (control `a`, arm `b`) with shadow arm `s` on a version of its own."""
    experiment = running_experiment(languages=languages or [])
    version = prompt_version_create(name="coach", system_prompt=prompt)
    return Arm.objects.create(experiment=experiment, name="s", prompt_version=version, model=model, weight=0,
                              shadow=True, shadow_share=share, shadow_budget=Decimal(budget))


@pytest.fixture
def eager(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the task runs in-process, as the worker would


async def test_a_shadow_answer_is_stored_beside_the_live_one_and_never_sent(kb, online, eager, settings):
    online.script.model_answers["shadow-model"] = SHADOW_ANSWER
    settings.LLM_PRICING = {**settings.LLM_PRICING, "shadow-model": (Decimal("1"), Decimal("2"))}
    arm = await in_db(shadow_arm)(model="shadow-model")
    ws = await connect()

    await ws.send_json_to({"type": "message", "text": SQUAT})
    start = await ws.receive_json_from(timeout=10)
    frames = await receive_until_end(ws)

    assert await ws.receive_nothing(timeout=1.0)  # the shadow answer sends no frame, ever
    live = await in_db(Message.objects.get)(pk=start["message_id"])
    assert token_text(frames) == live.text and SHADOW_ANSWER not in live.text
    assert [f["type"] for f in frames if f["type"] != "token"] == ["end"]
    shadow = await in_db(ShadowAnswer.objects.get)(arm=arm)
    assert shadow.live_message_id == live.pk and shadow.live_text == live.text
    assert shadow.shadow_text == SHADOW_ANSWER and shadow.model == "shadow-model"
    assert shadow.question == SQUAT and 0 <= shadow.similarity <= 1
    assert shadow.shadow_length == len(SHADOW_ANSWER) and shadow.shadow_tokens > 0 and shadow.cost > 0
    assert shadow.live_length == len(live.text) and shadow.live_latency_ms == live.latency_ms
    # the same context: the shadow arm's prompt, and the chunks the live answer was given
    sent = next(r for r in online.script.requests if r["model"] == "shadow-model")["messages"]
    live_sent = next(r for r in online.script.requests if r["model"] == "fake-model")["messages"]
    assert sent[0]["content"].startswith("You are a shadow coach.")
    assert sent[-1] == live_sent[-1] and "<knowledge_excerpts>" in sent[-1]["content"]  # the same data and question
    # nothing of it anywhere a visitor, the cache, review or the dashboards read
    assert await in_db(Message.objects.count)() == 2
    assert await in_db(AnswerFact.objects.count)() == 1
    assert not await in_db(CacheEntry.objects.filter(answer__contains="Shadow:").exists)()
    assert not await in_db(ReviewItem.objects.exclude(message_id=live.pk).exists)()
    await ws.disconnect()


async def test_an_llm_judge_says_which_answer_it_prefers(kb, online, eager, settings):
    settings.EVALUATION_JUDGE_MODEL = "judge-model"
    online.script.model_answers["shadow-model"] = SHADOW_ANSWER
    online.script.model_answers["judge-model"] = 'Sure: {"better": "A", "reason": "It names the cue."}'
    arm = await in_db(shadow_arm)(model="shadow-model")

    await ask(SQUAT)

    shadow = await in_db(ShadowAnswer.objects.get)(arm=arm)
    asked = next(r for r in online.script.requests if r["model"] == "judge-model")["messages"][-1]["content"]
    shown_first = "shadow" if asked.index(SHADOW_ANSWER) < asked.index(shadow.live_text) else "live"
    assert shadow.preference == shown_first and shadow.judge_reason == "It names the cue."


async def test_offline_a_shadow_answer_has_no_judge(kb, eager):
    arm = await in_db(shadow_arm)()
    await ask(SQUAT)
    shadow = await in_db(ShadowAnswer.objects.get)(arm=arm)
    assert shadow.shadow_text and shadow.preference == "" and shadow.cost == 0


def test_the_share_samples_answers_by_their_id(db):
    arm = shadow_arm(share=0.3, languages=["en"])
    ids = [uuid.UUID(int=n) for n in range(3000)]
    sampled = [i for i in ids if shadow_arms_sampling(answer_id=i, language="en") == [arm.pk]]
    assert 0.27 < len(sampled) / len(ids) < 0.33
    assert all(shadow_arms_sampling(answer_id=i, language="en") == [arm.pk] for i in sampled)  # fixed per answer
    assert shadow_arms_sampling(answer_id=sampled[0], language="de") == []  # outside the experiment's languages


def test_no_arm_samples_without_a_budget_a_running_experiment_or_an_active_arm(db):
    arm = shadow_arm(budget="0")
    answer = uuid.uuid4()
    assert shadow_arms_sampling(answer_id=answer, language="en") == []
    Arm.objects.filter(pk=arm.pk).update(shadow_budget=Decimal("1"))
    assert shadow_arms_sampling(answer_id=answer, language="en") == [arm.pk]
    Arm.objects.filter(pk=arm.pk).update(status=Arm.Status.PAUSED)
    assert shadow_arms_sampling(answer_id=answer, language="en") == []
    Arm.objects.filter(pk=arm.pk).update(status=Arm.Status.ACTIVE)
    Experiment.objects.filter(pk=arm.experiment_id).update(status=Experiment.Status.STOPPED)
    assert shadow_arms_sampling(answer_id=answer, language="en") == []


async def test_a_spent_budget_stops_shadow_answers_before_they_cost_anything(kb, online, eager, settings):
    online.script.model_answers["shadow-model"] = SHADOW_ANSWER
    settings.LLM_PRICING = {**settings.LLM_PRICING, "shadow-model": (Decimal("1"), Decimal("2"))}
    arm = await in_db(shadow_arm)(model="shadow-model", budget="0.0001")  # one answer spends it

    await ask(SQUAT)
    await ask("How do I do a plank?")
    turn, _ = await ask("How do I do a push-up?")

    assert await in_db(ShadowAnswer.objects.filter(arm=arm).count)() == 1
    assert sum(r["model"] == "shadow-model" for r in online.script.requests) == 1
    assert await in_db(shadow_answer_run)(arm_id=arm.pk, answer_id=turn.answer_id, chunk_ids=[],
                                          dense_scores=[]) is None


def stored_shadow(arm: Arm, *, live: str, shadow: str, preference: str = "", cost: str = "0.0004",
                  question: str = "Squat depth?", similarity: float = 0.8123,
                  reason: str = "Shorter and cites the excerpt.") -> ShadowAnswer:
    records = turn_start(visitor_id="v", conversation_id=None, channel="api", text=question,
                         client_msg_id="", pii_redacted=False)
    Message.objects.filter(pk=records.answer.pk).update(text=live, status=Message.Status.COMPLETE)
    return ShadowAnswer.objects.create(
        arm=arm, live_message_id=records.answer.pk, question=question, live_text=live, shadow_text=shadow,
        similarity=similarity, live_length=len(live), shadow_length=len(shadow), live_latency_ms=900,
        shadow_latency_ms=700, live_tokens=300, shadow_tokens=280, live_cost=Decimal("0.0003"), cost=Decimal(cost),
        preference=preference, judge_reason=reason if preference else "")


def test_the_admin_shows_live_and_shadow_answers_side_by_side(operator_client):
    arm = shadow_arm(budget="0.0010")
    stored_shadow(arm, live="Go to parallel [1].", shadow="<b>Hips</b> below the knee [1].", preference="shadow")

    page = operator_client.get(reverse("admin:experiments_experiment_change", args=[arm.experiment_id]))
    url = reverse("admin:experiments_arm_shadow", args=[arm.experiment_id, arm.pk])
    assert url in page.content.decode()

    html = operator_client.get(url).content.decode()
    assert "Go to parallel [1]." in html and "&lt;b&gt;Hips&lt;/b&gt; below the knee" in html  # escaped, never markup
    assert "<b>Hips" not in html
    assert "0.81" in html and "Shorter and cites the excerpt." in html
    assert "$0.0004 of $0.0010" in html  # spend against budget
    assert "100%</span>" in html and "judge preferred shadow (1 judged" in html


@needs_chromium
def test_an_operator_reads_the_shadow_comparison(operator_page, live_asgi):  # noqa: F811 (the fixture)
    arm = shadow_arm(budget="0.0100")
    stored_shadow(arm, preference="shadow", question="How do I do a barbell squat?", similarity=0.87, live=(
        "Stand with the bar on your upper back, feet shoulder-width apart [1]. Sit back and down until your thighs "
        "are parallel to the floor, then drive up through your heels [1]. Keep your chest up [2]."),
        shadow="Bar on the upper back, feet shoulder-width [1].\nSquat to parallel, chest up [2].\n"
               "Drive up through the whole foot [1].")
    stored_shadow(arm, preference="live", cost="0.0006", question="How do I brace for heavy squats?", similarity=0.64,
                  reason="The live answer stays with the excerpts; the shadow cites [3], which says nothing on it.",
                  live="Brace your core before each rep [1].",
                  shadow="Breathe in and brace [1]; keep the knees out [3].")

    operator_page.goto(live_asgi.url + reverse("admin:experiments_experiment_change", args=[arm.experiment_id]))
    operator_page.get_by_role("link", name="Shadow comparison").click()
    expect(operator_page.locator("#shadow-summary .card").first).to_contain_text("2")
    expect(operator_page.locator(".pair")).to_have_count(2)
    expect(operator_page.locator("#shadow-spend")).to_contain_text("$0.0010 of $0.0100")
    operator_page.screenshot(path=SHOTS + "/admin-shadow-comparison.png", full_page=True)
