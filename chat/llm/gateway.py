"""The gateway to any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp).

Streaming with the official async client; retries with exponential backoff on 429, 5xx,
connection errors, timeouts and cut streams, but only before the first token (after it the
visitor has seen text, and a retry would repeat it); then the fallback model; a circuit breaker
that fails fast while the endpoint is down.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, cast

import httpx2  # the HTTP client the openai SDK is built on
import openai
from django.conf import settings
from openai.types.chat import ChatCompletionMessageParam

from monitoring import metrics

from .breaker import BreakerState, CircuitBreaker
from .types import ChatMessage, Delta, LLMError, LLMUnavailable, StreamInterrupted


class _StreamCut(Exception):
    """The stream ended without a finish reason, or carried an error event: the server or a
    proxy dropped it."""


_RETRYABLE = (
    openai.RateLimitError,
    openai.InternalServerError,
    openai.APIConnectionError,  # includes APITimeoutError
    httpx2.TransportError,  # raised while reading a raw stream: cut connection, read timeout
    _StreamCut,
)


class _GaveUp(Exception):
    """Internal: this model failed before its first token; the next model may be tried."""


class LLMGateway:
    def __init__(
        self, *, base_url: str, api_key: str, model: str, fallback_model: str, timeout: float,
        max_retries: int, backoff: float, breaker: CircuitBreaker, max_tokens: int, temperature: float,
    ) -> None:
        self.base_url, self.api_key, self.timeout = base_url, api_key, timeout
        self.model, self.fallback_model = model, fallback_model
        self.max_retries, self.backoff, self.breaker = max_retries, backoff, breaker
        self.max_tokens, self.temperature = max_tokens, temperature

    def _client(self) -> openai.AsyncOpenAI:
        """This event loop's client for this server (HTTP pools belong to one loop; the ASGI server
        has one, tests and sync callers many)."""
        clients = _loop_clients.setdefault(asyncio.get_running_loop(), {})
        key = (self.base_url, self.api_key, self.timeout)
        client = clients.get(key)
        if client is None:
            client = clients[key] = openai.AsyncOpenAI(
                api_key=self.api_key or "not-needed", base_url=self.base_url or None,
                timeout=self.timeout, max_retries=0,  # retries are ours: only before the first token
                # The SDK's aiohttp transport: reading each token's chunk through the default
                # httpx stack costs far more CPU per token, and tokens are most of the work.
                http_client=openai.DefaultAioHttpClient(timeout=self.timeout),
            )
        return client

    async def stream(self, messages: Sequence[ChatMessage], *, model: str = "",
                     options: Mapping[str, Any] | None = None) -> AsyncIterator[Delta]:
        """`options`: generation settings for this call (an experiment arm's), over the configured ones."""
        models = list(dict.fromkeys(m for m in (model or self.model, self.fallback_model) if m))
        settings = {"max_tokens": self.max_tokens, "temperature": self.temperature, **(options or {})}
        last_error: BaseException | None = None
        for candidate in models:
            try:
                async for delta in self._stream_with_retries(messages, candidate, settings):
                    yield delta
                return
            except _GaveUp as exc:
                last_error = exc.__cause__
        raise LLMUnavailable(f"all models failed before answering: {last_error}") from last_error

    async def _stream_with_retries(
        self, messages: Sequence[ChatMessage], model: str, settings: Mapping[str, Any]
    ) -> AsyncIterator[Delta]:
        for attempt in range(self.max_retries + 1):
            if not self.breaker.allow():
                raise LLMUnavailable("the LLM circuit breaker is open")
            started = False
            try:
                async for delta in self._call(messages, model, settings):
                    started = started or bool(delta.text)
                    yield delta
            except _RETRYABLE as exc:
                self.breaker.record_failure()
                metrics.BREAKER_OPEN.set(int(self.breaker.state is not BreakerState.CLOSED))
                metrics.LLM_CALLS.labels(model=model, outcome="error").inc()
                if started:
                    raise StreamInterrupted(f"the answer stream broke off: {exc!r}") from exc
                if attempt == self.max_retries:
                    raise _GaveUp from exc
                metrics.LLM_RETRIES.labels(model=model).inc()
                await asyncio.sleep(self.backoff * 2**attempt)
                continue
            except openai.APIStatusError as exc:  # 4xx other than 429: retrying will not help
                metrics.LLM_CALLS.labels(model=model, outcome="refused").inc()
                if started:
                    raise LLMError(str(exc)) from exc
                raise _GaveUp from exc
            self.breaker.record_success()
            metrics.BREAKER_OPEN.set(0)
            metrics.LLM_CALLS.labels(model=model, outcome="ok").inc()
            return

    async def _call(
        self, messages: Sequence[ChatMessage], model: str, settings: Mapping[str, Any]
    ) -> AsyncIterator[Delta]:
        # The SDK's raw streaming response: its HTTP client, auth and status errors, but the
        # server-sent events are read here with json.loads: a pydantic model per chunk spends
        # interpreter time, the scarcest thing under load, on fields nobody reads.
        finished = False
        async with self._client().chat.completions.with_streaming_response.create(
            model=model,
            messages=cast(list[ChatCompletionMessageParam], [{"role": m.role, "content": m.content} for m in messages]),
            stream=True,
            stream_options={"include_usage": True},
            **settings,  # names validated where an arm is saved (experiments.models.GENERATION_SETTINGS)
        ) as response:
            async for events in _event_batches(_line_batches(response.http_response.aiter_bytes())):
                deltas = []
                for event in events:
                    for delta, done in _deltas(event, model):
                        finished = finished or done
                        if delta is not None:
                            deltas.append(delta)
                for delta in _joined(deltas):
                    yield delta
        if not finished:
            raise _StreamCut("stream ended without a finish reason")


async def _line_batches(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[bytes]]:
    """The body's complete lines, as bytes, per read: the SDK's text and line decoders cost more
    than the split."""
    pending = b""
    async for chunk in chunks:
        *lines, pending = (pending + chunk).split(b"\n")
        if lines:
            yield [line.rstrip(b"\r") for line in lines]
    if pending:
        yield [pending]


async def _event_batches(batches: AsyncIterator[list[bytes]]) -> AsyncIterator[list[dict]]:
    """The JSON payloads of a chat-completions event stream, up to `[DONE]`, per read.

    The body is read to its end, past `[DONE]`: a response closed before its last chunk takes its
    connection down with it, and every answer paid a new TCP (with OpenAI, TLS) connection."""
    done = False
    async for lines in batches:
        events = []
        for line in lines:
            if done or not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                done = True
                continue
            event = json.loads(data)
            if event.get("error"):
                raise _StreamCut(f"error event in the stream: {event['error']}")
            events.append(event)
        if events:
            yield events


def _joined(deltas: list[Delta]) -> list[Delta]:
    """Text that arrived in one read goes on as one piece. Idle, that is one token per read, as
    before; when the process falls behind, the tokens waiting in the socket leave as one frame
    instead of one each, so a busy server spends less per token just when it has least to spare."""
    out: list[Delta] = []
    for delta in deltas:
        previous = out[-1] if out else None
        if previous is not None and previous.text and delta.text and previous.model == delta.model:
            out[-1] = Delta(text=previous.text + delta.text, model=delta.model)
        else:
            out.append(delta)
    return out


def _deltas(chunk: dict, model: str) -> list[tuple[Delta | None, bool]]:
    """(delta to pass on, whether a choice finished) for one chunk."""
    out: list[tuple[Delta | None, bool]] = []
    name = chunk.get("model") or model
    usage = chunk.get("usage")
    if usage:
        out.append((Delta(model=name, tokens_in=usage.get("prompt_tokens"),
                          tokens_out=usage.get("completion_tokens")), False))
    for choice in chunk.get("choices") or []:
        content = (choice.get("delta") or {}).get("content")
        out.append((Delta(text=content, model=name) if content else None, choice.get("finish_reason") is not None))
    return out


# Every client by its event loop and server, so a loop that ends (a test's) can close its
# connections, and a gateway rebuilt with the same server reuses them.
_loop_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, str, float], openai.AsyncOpenAI]
] = weakref.WeakKeyDictionary()


async def close_clients() -> None:
    """Close the HTTP clients made on the running event loop (before that loop ends); the next
    request on it makes new ones."""
    for client in _loop_clients.pop(asyncio.get_running_loop(), {}).values():
        await client.close()


_breaker = CircuitBreaker(failure_threshold=5, reset_seconds=30.0)
_gateway: tuple[tuple, LLMGateway] | None = None


def get_gateway() -> LLMGateway:
    """The process's gateway, rebuilt when its settings change (the breaker is kept)."""
    global _gateway
    key = (settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY, settings.LLM_MODEL, settings.LLM_FALLBACK_MODEL,
           settings.LLM_TIMEOUT_SECONDS, settings.LLM_MAX_RETRIES, settings.LLM_RETRY_BACKOFF_SECONDS,
           settings.LLM_MAX_TOKENS, settings.LLM_TEMPERATURE)
    if _gateway is None or _gateway[0] != key:
        _breaker.failure_threshold = settings.LLM_BREAKER_FAILURES
        _breaker.reset_seconds = settings.LLM_BREAKER_RESET_SECONDS
        _gateway = (key, LLMGateway(
            base_url=settings.OPENAI_BASE_URL, api_key=settings.OPENAI_API_KEY, model=settings.LLM_MODEL,
            fallback_model=settings.LLM_FALLBACK_MODEL, timeout=settings.LLM_TIMEOUT_SECONDS,
            max_retries=settings.LLM_MAX_RETRIES, backoff=settings.LLM_RETRY_BACKOFF_SECONDS, breaker=_breaker,
            max_tokens=settings.LLM_MAX_TOKENS, temperature=settings.LLM_TEMPERATURE,
        ))
    return _gateway[1]


def llm_enabled() -> bool:
    return bool(settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL)


def breaker_health_check() -> tuple[bool, str]:
    if not llm_enabled():
        return True, "offline mode (no LLM configured)"
    state = _breaker.state
    return state is not BreakerState.OPEN, f"breaker {state}"
