"""Rate limits on the REST API (per address, per visitor, per endpoint; counted in Redis) and the cap on
concurrent HTTP requests that keeps the chat pipeline's database connections free."""

import asyncio

import httpx
import pytest
import redis
from channels.db import database_sync_to_async as in_db
from django.conf import settings as django_settings
from django.test import Client

from chat import pipeline
from chat.models import Conversation, Message
from chat.streams import NullSink


def limited(response) -> bool:
    body = response.json()
    return (response.status_code == 429 and body["code"] == "rate_limited" and body["retry_after"] >= 1
            and int(response["Retry-After"]) >= 1)


def test_visitor_tokens_are_issued_a_few_an_hour_per_address(db, settings):
    settings.API_RATES = {**settings.API_RATES, "visitor-create": "3/hour"}
    client = Client(REMOTE_ADDR="203.0.113.5")
    issued = [client.post("/api/v1/visitors/") for _ in range(3)]
    assert all(r.status_code == 201 and r.json()["token"] for r in issued)
    refused = client.post("/api/v1/visitors/")
    assert limited(refused) and refused.json()["retry_after"] > 60  # an hour's window: wait for a slot
    assert Client(REMOTE_ADDR="203.0.113.6").post("/api/v1/visitors/").status_code == 201  # another address


def test_the_public_search_is_limited_per_address_and_a_forged_forwarded_for_does_not_help(db, settings):
    settings.API_RATES = {**settings.API_RATES, "knowledge-search": "2/min"}
    client = Client(REMOTE_ADDR="203.0.113.7")
    assert [client.get("/api/v1/knowledge/search", {"q": "squat"}).status_code for _ in range(2)] == [200, 200]
    forged = client.get("/api/v1/knowledge/search", {"q": "squat"}, HTTP_X_FORWARDED_FOR="198.51.100.1")
    assert limited(forged)


def test_one_visitor_is_limited_from_every_address_and_the_count_is_in_redis(db, settings):
    settings.API_RATES = {**settings.API_RATES, "visitor": "3/min"}
    token = Client(REMOTE_ADDR="203.0.113.8").post("/api/v1/visitors/").json()["token"]
    answers = [Client(REMOTE_ADDR=f"203.0.113.{n}").get("/api/v1/profile/", HTTP_X_VISITOR_TOKEN=token)
               for n in (20, 21, 22)]
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert limited(Client(REMOTE_ADDR="203.0.113.23").get("/api/v1/profile/", HTTP_X_VISITOR_TOKEN=token))
    # Every ASGI process and the worker read the same counts: they are in the shared Redis, not in memory.
    assert list(redis.Redis.from_url(django_settings.REDIS_URL).scan_iter(match="*throttle:visitor:*"))


@pytest.mark.django_db(transaction=True)
async def test_a_flood_of_requests_waits_its_turn_and_the_chat_still_answers(kb, live_asgi, settings):
    settings.API_RATES = {**settings.API_RATES, "address": "10000/min", "knowledge-search": "10000/min"}
    settings.HTTP_CONCURRENCY, settings.HTTP_QUEUE_SECONDS = 2, 0.05

    async def flood(http: httpx.AsyncClient) -> list[httpx.Response]:
        return await asyncio.gather(*(http.get(f"{live_asgi.url}/api/v1/knowledge/search", params={"q": f"squat {n}"})
                                      for n in range(40)))

    async with httpx.AsyncClient(timeout=30) as http:
        flooded, answered = await asyncio.gather(flood(http), pipeline.answer(
            visitor_id="v-during-flood", conversation_id=None, text="How do I do a plank?", client_msg_id="",
            channel=Conversation.Channel.API, sink=NullSink()))
    statuses = {r.status_code for r in flooded}
    assert statuses <= {200, 503} and 503 in statuses and 200 in statuses
    busy = next(r for r in flooded if r.status_code == 503)
    assert busy.json()["code"] == "busy" and busy.headers["retry-after"] == "1"
    turn, end = answered
    assert end["type"] == "end"
    assert (await in_db(Message.objects.get)(pk=turn.answer_id)).status == Message.Status.COMPLETE
