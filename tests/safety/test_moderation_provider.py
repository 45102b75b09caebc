"""Who moderates (SAFETY_MODERATION_PROVIDER), and an endpoint that fails is left alone for a while: a
server without /v1/moderations (vLLM, Ollama) costs one failed call a minute, not two a turn."""

import asyncio
import os
import subprocess
import sys
import time

import pytest
from channels.db import database_sync_to_async as in_db

from chat.models import Message
from chat.safety.moderation import moderate
from tests.chat.test_pipeline import ask

THREAT = "I will kill you and your whole family."


async def test_offline_moderation_with_an_llm_configured_asks_no_endpoint(online, settings):
    settings.SAFETY_MODERATION_PROVIDER = "offline"
    verdict = await moderate(THREAT)
    assert verdict.flagged and verdict.source == "offline"
    assert online.script.moderation_requests == []


async def test_auto_and_openai_ask_the_endpoint(online, settings):
    for provider in ("auto", "openai"):
        settings.SAFETY_MODERATION_PROVIDER = provider
        assert (await moderate("How do I do a plank?")).source == "openai"
    assert len(online.script.moderation_requests) == 2


async def test_after_a_failure_the_endpoint_is_left_alone_until_the_pause_is_over(online, settings):
    settings.SAFETY_MODERATION_RETRY_SECONDS = 0.5
    online.script.moderation_faults.append("500")

    first, second = await moderate(THREAT), await moderate(THREAT)
    assert (first.source, second.source) == ("offline", "offline") and first.flagged and second.flagged
    assert len(online.script.moderation_requests) == 1  # the second was not asked

    await asyncio.sleep(0.6)
    assert (await moderate(THREAT)).source == "openai"  # asked again, and it answers
    assert (await moderate(THREAT)).source == "openai"
    assert len(online.script.moderation_requests) == 3


async def test_while_the_classifier_decides_the_event_loop_keeps_running(online, settings):
    settings.SAFETY_MODERATION_PROVIDER = "offline"
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    running = asyncio.create_task(ticker())
    await asyncio.gather(*(moderate(f"{THREAT} {n}") for n in range(20)))
    running.cancel()
    # On the loop, the twenty calls would run back to back with the ticker waiting (a tick or two); on threads
    # the loop turns while each one runs. How many times depends on the machine's load: more than the calls.
    assert ticks > 20


@pytest.mark.django_db(transaction=True)
async def test_a_server_without_moderation_costs_one_timeout_not_two_a_turn(kb, online, settings):
    settings.SAFETY_MODERATION_TIMEOUT_SECONDS = 0.3
    settings.STANDALONE_LLM = False
    online.script.moderation_faults.append("timeout")
    started = time.monotonic()
    first, _ = await ask("How do I do a barbell squat?")
    await ask("How do I do a plank?", conversation_id=first.conversation_id)
    await ask("How do I do a pull-up?", conversation_id=first.conversation_id)

    # Three turns, six moderations: the endpoint is asked only in the first turn, for its question and its
    # answer side by side (the question's moderation only flags here, so it is asked beside the answer's).
    asked = sorted(r["input"] for r in online.script.moderation_requests)
    assert asked == sorted(["How do I do a barbell squat?", "Keep your back straight and push through your heels [1]."])
    assert time.monotonic() - started < 10
    answers = await in_db(list)(Message.objects.filter(role=Message.Role.ASSISTANT, status=Message.Status.COMPLETE))
    assert len(answers) == 3


@pytest.mark.parametrize(("env", "message"), [
    ({"SAFETY_MODERATION_PROVIDER": "perspective"}, "SAFETY_MODERATION_PROVIDER must be auto, openai or offline"),
    ({"SAFETY_MODERATION_PROVIDER": "openai", "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""}, "needs OPENAI_API_KEY"),
])
def test_a_provider_that_cannot_work_fails_loudly_at_start(env, message):
    result = subprocess.run([sys.executable, "-c", "import django; from django.conf import settings; settings.DEBUG"],
                            env=dict(os.environ, **env), capture_output=True, text=True)
    assert result.returncode != 0 and message in result.stderr
