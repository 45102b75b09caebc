"""The answer path with an experiment running: the visitor's arm picks the prompt version, every answer
records its arm, and stored answers (cache and approved) never cross arms unless an arm shares reuse."""

import pytest
from channels.db import database_sync_to_async as in_db
from django.conf import settings
from django.core.exceptions import ValidationError

from chat.models import Message
from chat.reuse import selectors as reuse_selectors
from chat.reuse.scope import redis_client
from experiments.assignment import forget_running_experiments
from experiments.models import PRODUCTION, validate_generation
from experiments.services import prompt_version_create
from monitoring.models import AnswerFact
from review.models import ApprovedAnswer
from review.services import approved_answer_save
from tests.chat.test_pipeline import ask
from tests.experiments.builders import running_experiment, visitor_in

pytestmark = pytest.mark.django_db(transaction=True)

SQUAT = "How do I do a barbell squat?"


@pytest.fixture(autouse=True)
def _fresh_cache_state():
    reuse_selectors.forget_guard_params()
    redis_client.cache_clear()
    yield
    redis_client.cache_clear()


async def answered(turn) -> tuple[Message, AnswerFact]:
    message = await in_db(Message.objects.get)(pk=turn.answer_id)
    return message, await in_db(AnswerFact.objects.get)(message_id=turn.answer_id)


async def test_each_arm_answers_with_its_version_and_the_arm_is_recorded(kb):
    experiment = await in_db(running_experiment)()
    a, b = await in_db(visitor_in)("a"), await in_db(visitor_in)("b")
    arms = {arm.name: arm async for arm in experiment.arms.select_related("prompt_version")}

    for visitor, name in ((a, "a"), (b, "b")):
        turn, end = await ask("How do I do a plank?", visitor=visitor)
        message, fact = await answered(turn)
        assert end["type"] == "end"
        assert message.prompt_version_id == fact.prompt_version_id == arms[name].prompt_version_id
        assert fact.arm == f"{experiment.pk}:{name}"


async def test_a_cached_answer_is_never_served_to_another_arm(kb):
    await in_db(running_experiment)()
    a1 = await in_db(visitor_in)("a", prefix="first")
    a2 = await in_db(visitor_in)("a", prefix="second")
    b = await in_db(visitor_in)("b")

    await ask(SQUAT, visitor=a1)
    _, end_b = await ask(SQUAT, visitor=b)
    _, end_a = await ask(SQUAT, visitor=a2)

    assert end_b["reuse"] == "none"
    assert end_a["reuse"] == "cache"


async def test_an_arm_that_shares_reuse_is_served_controls_cached_answer(kb):
    await in_db(running_experiment)(share_reuse=True)
    a, b = await in_db(visitor_in)("a"), await in_db(visitor_in)("b")

    await ask(SQUAT, visitor=a)
    _, end = await ask(SQUAT, visitor=b)

    assert end["reuse"] == "cache"


async def test_an_answer_approved_under_one_arm_is_not_served_to_another(kb):
    await in_db(running_experiment)()
    a1 = await in_db(visitor_in)("a", prefix="first")
    a2 = await in_db(visitor_in)("a", prefix="second")
    b = await in_db(visitor_in)("b")
    turn, _ = await ask("How do I do a plank?", visitor=a1)  # an answer given under control's prompt
    await in_db(approved_answer_save)(answer=ApprovedAnswer(
        question="How do I perform a barbell squat correctly?", answer="Brace, sit back, knees out. (verified)",
        language="en", source_message_id=turn.answer_id,
    ))

    _, end_b = await ask("How do I do a barbell squat correctly?", visitor=b)
    _, end_a = await ask("How do I do a barbell squat correctly?", visitor=a2)

    assert end_b["reuse"] == "none"
    assert end_a["reuse"] == "approved"


async def test_a_written_approved_answer_from_no_arm_is_served_to_every_arm(kb):
    await in_db(running_experiment)()
    b = await in_db(visitor_in)("b")
    await in_db(approved_answer_save)(answer=ApprovedAnswer(
        question="How do I perform a barbell squat correctly?", answer="Brace. (verified)", language="en"))
    _, end = await ask("How do I do a barbell squat correctly?", visitor=b)
    assert end["reuse"] == "approved"


async def test_the_language_variable_is_filled_in_before_the_model_reads_the_prompt(kb, online):
    await in_db(prompt_version_create)(name="coach", system_prompt="Answer in {language}. Cite [1].",
                                       labels=[PRODUCTION])
    await ask("How do I do a plank?", visitor="v9")
    system = online.script.requests[-1]["messages"][0]["content"]
    assert "Answer in en." in system and "{language}" not in system


async def test_an_arms_generation_settings_go_with_its_answers_and_only_its_own(kb, online):
    experiment = await in_db(running_experiment)()
    await experiment.arms.filter(name="b").aupdate(generation={"temperature": 0.2, "max_tokens": 120})
    await in_db(forget_running_experiments)()
    a, b = await in_db(visitor_in)("a"), await in_db(visitor_in)("b")

    await ask("How do I do a plank?", visitor=b)
    sent_for_b = online.script.requests[-1]
    await ask("How do I do a lunge?", visitor=a)
    sent_for_a = online.script.requests[-1]

    assert (sent_for_b["temperature"], sent_for_b["max_tokens"]) == (0.2, 120)
    assert (sent_for_a["temperature"], sent_for_a["max_tokens"]) == (settings.LLM_TEMPERATURE,
                                                                      settings.LLM_MAX_TOKENS)


@pytest.mark.parametrize("generation, problem", [
    ({"temprature": 0.2}, "Unknown generation setting"), ({"temperature": 3}, "between 0 and 2"),
    ({"max_tokens": 1.5}, "integer"), ({"top_p": "high"}, "number"), (["temperature"], "an object"),
])
def test_generation_settings_are_checked_when_an_arm_is_saved(generation, problem):
    with pytest.raises(ValidationError, match=problem):
        validate_generation(generation)
