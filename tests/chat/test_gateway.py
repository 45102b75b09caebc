import asyncio

import pytest

from chat.llm import gateway
from chat.llm.breaker import BreakerState, CircuitBreaker
from chat.llm.gateway import LLMGateway
from chat.llm.types import ChatMessage, LLMUnavailable, StreamInterrupted

QUESTION = [ChatMessage("user", "How do I squat?")]


def make_gateway(server, **overrides) -> LLMGateway:
    options = dict(
        base_url=server.base_url, api_key="k", model="fake-model", fallback_model="", timeout=1.0,
        max_retries=2, backoff=0.01, breaker=CircuitBreaker(failure_threshold=3, reset_seconds=60),
        max_tokens=100, temperature=0,
    )
    options.update(overrides)
    return LLMGateway(**options)


async def collect(gateway, model=""):
    deltas = [d async for d in gateway.stream(QUESTION, model=model)]
    return "".join(d.text for d in deltas), deltas


async def test_it_streams_tokens_and_usage(llm_server):
    llm_server.script.answers.append("Feet shoulder width apart.")
    llm_server.script.tokens_per_s = 100  # each token its own read
    text, deltas = await collect(make_gateway(llm_server))
    assert text == "Feet shoulder width apart."
    assert [d.text for d in deltas if d.text] == ["Feet ", "shoulder ", "width ", "apart."]
    assert deltas[-1].tokens_out == 4 and deltas[-1].tokens_in > 0


async def test_tokens_that_arrive_together_go_on_as_one_piece(llm_server):
    """A server (or a client that fell behind) with several tokens in one read: one delta for them,
    so the socket gets one frame, not one per token."""
    llm_server.script.answers.append("Feet shoulder width apart, then sit back.")
    llm_server.script.tokens_per_write = 3
    llm_server.script.tokens_per_s = 20  # the writes themselves apart
    text, deltas = await collect(make_gateway(llm_server))
    assert text == "Feet shoulder width apart, then sit back."
    assert [d.text for d in deltas if d.text] == ["Feet shoulder width ", "apart, then sit ", "back."]
    assert deltas[-1].tokens_out == 7


async def test_answers_in_a_row_reuse_one_connection(llm_server):
    """Each answer on a new connection would pay a TCP (with a hosted LLM, a TLS) handshake."""
    gateway = make_gateway(llm_server)
    for _ in range(3):
        text, _ = await collect(gateway)
        assert text.startswith("Keep")
    assert len(set(llm_server.script.clients)) == 1


async def test_a_gateway_rebuilt_for_new_settings_keeps_the_connection_and_closed_clients_are_replaced(llm_server):
    """Settings change (a new model) rebuilds the gateway: same server, same connection. Once a
    loop's clients are closed, the next answer on that loop opens a new one instead of failing."""
    text, _ = await collect(make_gateway(llm_server))
    assert text.startswith("Keep")
    rebuilt = make_gateway(llm_server, model="another-model")
    await collect(rebuilt)
    assert len(set(llm_server.script.clients)) == 1
    await gateway.close_clients()
    text, _ = await collect(rebuilt)
    assert text.startswith("Keep") and len(set(llm_server.script.clients)) == 2


@pytest.mark.parametrize("fault", ["429", "500"])
async def test_it_retries_before_the_first_token(llm_server, fault):
    llm_server.script.faults.extend([fault, fault])
    text, _ = await collect(make_gateway(llm_server, max_retries=2))
    assert text.startswith("Keep your back straight")
    assert len(llm_server.script.requests) == 3


async def test_an_error_event_in_the_stream_is_retried_before_the_first_token(llm_server):
    llm_server.script.faults.append("error_event")
    text, _ = await collect(make_gateway(llm_server))
    assert text.startswith("Keep")
    assert len(llm_server.script.requests) == 2


async def test_it_gives_up_after_the_last_retry(llm_server):
    llm_server.script.faults.extend(["429", "429", "429"])
    with pytest.raises(LLMUnavailable):
        await collect(make_gateway(llm_server, max_retries=2))
    assert len(llm_server.script.requests) == 3


async def test_it_does_not_retry_after_the_first_token(llm_server):
    llm_server.script.faults.append("cut")
    gateway = make_gateway(llm_server)
    seen = []
    with pytest.raises(StreamInterrupted):
        async for delta in gateway.stream(QUESTION):
            seen.append(delta.text)
    assert "".join(seen).startswith("Keep")
    assert len(llm_server.script.requests) == 1


async def test_it_times_out_and_then_retries(llm_server):
    llm_server.script.faults.append("timeout")
    text, _ = await collect(make_gateway(llm_server, timeout=0.3))
    assert text.startswith("Keep")
    assert len(llm_server.script.requests) == 2


async def test_it_falls_back_to_the_second_model(llm_server):
    llm_server.script.model_faults["fake-model"] = "500"
    text, deltas = await collect(make_gateway(llm_server, fallback_model="backup-model", max_retries=1))
    assert text.startswith("Keep")
    assert deltas[-1].model == "backup-model"
    assert [r["model"] for r in llm_server.script.requests] == ["fake-model", "fake-model", "backup-model"]


async def test_the_breaker_opens_fails_fast_and_closes_again(llm_server):
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=3, reset_seconds=30, clock=lambda: now[0])
    gateway = make_gateway(llm_server, breaker=breaker, max_retries=2)
    llm_server.script.model_faults["fake-model"] = "500"
    with pytest.raises(LLMUnavailable):
        await collect(gateway)
    assert breaker.state is BreakerState.OPEN
    requests_when_opened = len(llm_server.script.requests)

    with pytest.raises(LLMUnavailable, match="circuit breaker is open"):
        await collect(gateway)
    assert len(llm_server.script.requests) == requests_when_opened  # failed fast, no call

    now[0] += 31
    del llm_server.script.model_faults["fake-model"]
    assert breaker.state is BreakerState.HALF_OPEN
    text, _ = await collect(gateway)
    assert text.startswith("Keep") and breaker.state is BreakerState.CLOSED


async def test_a_failed_trial_reopens_the_breaker(llm_server):
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=1, reset_seconds=10, clock=lambda: now[0])
    gateway = make_gateway(llm_server, breaker=breaker, max_retries=0)
    llm_server.script.faults.extend(["500", "500"])
    with pytest.raises(LLMUnavailable):
        await collect(gateway)
    now[0] += 11
    with pytest.raises(LLMUnavailable):
        await collect(gateway)
    assert breaker.state is BreakerState.OPEN


async def test_concurrent_streams_share_one_gateway(llm_server):
    llm_server.script.tokens_per_s = 200
    gateway = make_gateway(llm_server)
    results = await asyncio.gather(*(collect(gateway) for _ in range(10)))
    assert all(text.startswith("Keep") for text, _ in results)
