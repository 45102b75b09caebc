"""Moderation of questions and answers: OpenAI's endpoint (the local test server speaks its wire format)
with an LLM configured, the offline classifier without one or when the endpoint fails."""

import time

import pytest

from chat.safety.moderation import moderate, moderate_offline

THREAT = "I will kill you and your whole family."
QUESTION = "How do I do a deadlift without hurting my back?"
ANSWER = "Keep the bar close to your shins and your back neutral as you stand up [1]."


@pytest.mark.parametrize(("text", "category"), [
    (THREAT, "violence"), ("Send me naked pictures of yourself.", "sexual")])
def test_the_offline_classifier_flags_harmful_text_with_its_category(text, category):
    verdict = moderate_offline(text)
    assert verdict.flagged and verdict.source == "offline"
    assert category in verdict.categories


@pytest.mark.parametrize("text", [QUESTION, ANSWER, "These lunges are murdering my quads, is that normal?"])
def test_the_offline_classifier_lets_fitness_talk_through(text):
    assert not moderate_offline(text).flagged


async def test_without_an_llm_moderation_is_offline(settings):
    settings.OPENAI_API_KEY = settings.OPENAI_BASE_URL = ""
    assert (await moderate(THREAT)).source == "offline"


async def test_with_an_llm_the_openai_endpoint_moderates_questions_and_answers(online, settings):
    settings.SAFETY_MODERATION_MODEL = "omni-moderation-test"
    online.script.flag_words = {"punch you": ["harassment", "violence"]}

    question = await moderate("If you get this wrong I will punch you.")
    answer = await moderate(ANSWER)

    assert question.flagged and question.source == "openai"
    assert set(question.categories) == {"harassment", "violence"}
    assert question.category_text == "harassment, violence"
    assert not answer.flagged and answer.source == "openai"
    assert [r["model"] for r in online.script.moderation_requests] == ["omni-moderation-test"] * 2
    assert online.script.moderation_requests[1]["input"] == ANSWER


async def test_a_failing_endpoint_leaves_the_decision_to_the_offline_classifier(online):
    online.script.moderation_faults.append("500")
    verdict = await moderate(THREAT)
    assert verdict.flagged and verdict.source == "offline"


async def test_a_slow_endpoint_is_not_waited_for(online, settings):
    settings.SAFETY_MODERATION_TIMEOUT_SECONDS = 0.3
    online.script.moderation_faults.append("timeout")
    started = time.monotonic()
    verdict = await moderate(QUESTION)
    assert verdict.source == "offline" and not verdict.flagged
    assert time.monotonic() - started < 2
