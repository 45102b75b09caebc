"""/metrics in Prometheus' text format: answers counted by outcome and reuse after real answers, latency
histograms, open websockets; refused without the token from elsewhere."""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async as in_db
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from chat.llm.breaker import CircuitBreaker
from chat.llm.types import LLMUnavailable
from review.models import ReviewItem
from tests.chat.test_consumer import ask_and_finish, connect
from tests.chat.test_gateway import collect, make_gateway
from tests.factories import ReviewItemFactory

pytestmark = pytest.mark.django_db(transaction=True)


def scrape(**headers) -> dict[tuple[str, tuple], float]:
    # with a token: from an address off the allow-list, so the token is what lets it in
    response = Client(REMOTE_ADDR="10.1.2.3" if headers else "127.0.0.1").get("/metrics", **headers)
    assert response.status_code == 200, response.content
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.content.decode()) for s in family.samples}


def answers(samples, outcome="complete", reuse="none") -> float:
    return samples.get(("spotter_answers_total", (("outcome", outcome), ("reuse", reuse))), 0.0)


async def test_real_answers_are_counted_and_timed_and_open_sockets_shown(kb, settings):
    settings.METRICS_TOKEN = "scrape-me"
    auth = {"HTTP_AUTHORIZATION": "Bearer scrape-me"}
    before = await in_db(scrape)(**auth)
    ws = await connect()
    await ask_and_finish(ws, "How do I do a plank?")
    await ask_and_finish(ws, "How do I do a plank?")  # the same question again: served from the cache

    after = await in_db(scrape)(**auth)

    assert answers(after) - answers(before) == 1
    assert answers(after, reuse="cache") - answers(before, reuse="cache") == 1
    latency_count = ("spotter_answer_latency_seconds_count", ())
    assert after[latency_count] - before.get(latency_count, 0) == 2
    assert after[("spotter_websocket_connections", ())] >= 1
    await ws.disconnect()


def test_metrics_are_refused_without_the_token_from_another_address(db, settings):
    settings.METRICS_TOKEN = "scrape-me"
    refused = Client(REMOTE_ADDR="10.1.2.3").get("/metrics", HTTP_AUTHORIZATION="Bearer wrong")
    assert refused.status_code == 401 and refused.json()["code"] == "not_authorized"
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 200  # the allow-list


def test_the_review_queue_depth_and_its_oldest_wait_are_read_when_scraped(db, settings):
    waiting = ReviewItemFactory.create()
    ReviewItem.objects.filter(pk=waiting.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    ReviewItemFactory.create(status=ReviewItem.Status.REJECTED)

    samples = scrape()

    assert samples[("spotter_review_queue_depth", ())] == 1
    assert 600 <= samples[("spotter_review_queue_oldest_seconds", ())] < 700


async def test_an_llm_breaker_that_opens_is_shown_and_closing_clears_it(llm_server, db):
    gateway = make_gateway(llm_server, breaker=CircuitBreaker(failure_threshold=1, reset_seconds=0), max_retries=0)
    llm_server.script.model_faults["fake-model"] = "500"
    with pytest.raises(LLMUnavailable):
        await collect(gateway)
    assert (await in_db(scrape)())[("spotter_llm_breaker_open", ())] == 1

    del llm_server.script.model_faults["fake-model"]
    await collect(gateway)  # the half-open trial succeeds
    assert (await in_db(scrape)())[("spotter_llm_breaker_open", ())] == 0
