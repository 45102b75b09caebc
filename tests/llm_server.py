"""A local OpenAI-compatible server for tests and benchmarks.

It speaks the real wire protocol (JSON and server-sent events, `stream_options.include_usage`),
so the real `openai` client is exercised end to end. Behaviour is scripted:

- answers: a queue of answer texts (the default answer when empty)
- ttft / tokens_per_s: time to first token and streaming rate
- tokens_per_write: token events sent in one write (as a server does that produced several
  tokens before the client read; a client that falls behind sees the same)
- faults: a queue of faults consumed one per chat request: "429", "500", "timeout" (never
  answers), "cut" (streams a few tokens, then drops the connection), "error_event" (a 200
  stream whose first event is an error, as OpenAI sends when a model fails mid-request)
- model_faults: a fault that always applies to one model name (to test fallbacks)

In-process: `with LLMServer() as server: server.script.answers.append(...)`.
Out of process (benchmarks): `python -m tests.llm_server --port 8765 --ttft-ms 200 --tokens-per-s 50`;
POST /_control with JSON fields of Script changes the script.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import uvicorn

DEFAULT_ANSWER = "Keep your back straight and push through your heels [1]."


@dataclass
class Script:
    answers: deque[str] = field(default_factory=deque)
    default_answer: str = DEFAULT_ANSWER
    ttft: float = 0.0
    tokens_per_s: float = 0.0  # 0: as fast as possible
    tokens_per_write: int = 1
    faults: deque[str] = field(default_factory=deque)
    model_faults: dict[str, str] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    clients: list[tuple[str, int]] = field(default_factory=list)  # (host, port) per chat request

    def next_answer(self) -> str:
        return self.answers.popleft() if self.answers else self.default_answer

    def next_fault(self, model: str) -> str | None:
        if model in self.model_faults:
            return self.model_faults[model]
        return self.faults.popleft() if self.faults else None


def _tokens(text: str) -> list[str]:
    return re.findall(r"\S+\s*", text) or [text]


def _fake_embedding(text: str, dimensions: int) -> list[float]:
    """Hashed bag of words: texts that share words are near each other, as with a real model."""
    raw = [0.0] * dimensions
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        raw[int.from_bytes(digest[:4], "big") % dimensions] += 1.0 if digest[4] % 2 else -1.0
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw] if any(raw) else [1.0 / math.sqrt(dimensions)] * dimensions


class _App:
    def __init__(self, script: Script) -> None:
        self.script = script

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path, method = scope["path"], scope["method"]
        payload = json.loads(body) if body else {}
        if path == "/v1/models" and method == "GET":
            await self._json(send, 200, {"object": "list", "data": [
                {"id": "fake-model", "object": "model", "created": 0, "owned_by": "spotter-tests"}]})
        elif path == "/v1/chat/completions" and method == "POST":
            self.script.clients.append(tuple(scope.get("client") or ("", 0)))
            await self._chat(send, payload)
        elif path == "/v1/embeddings" and method == "POST":
            await self._embeddings(send, payload)
        elif path == "/_control" and method == "POST":
            self._control(payload)
            await self._json(send, 200, {"ok": True})
        else:
            await self._json(send, 404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def _control(self, payload: dict[str, Any]) -> None:
        for key, value in payload.items():
            current = getattr(self.script, key)
            setattr(self.script, key, deque(value) if isinstance(current, deque) else value)

    async def _json(self, send, status: int, data: dict[str, Any]) -> None:
        raw = json.dumps(data).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]})
        await send({"type": "http.response.body", "body": raw})

    async def _chat(self, send, payload: dict[str, Any]) -> None:
        self.script.requests.append(payload)
        model = payload.get("model", "fake-model")
        fault = self.script.next_fault(model)
        if fault == "429":
            await self._json(send, 429, {"error": {"message": "rate limited", "type": "rate_limit_error"}})
            return
        if fault == "500":
            await self._json(send, 500, {"error": {"message": "server exploded", "type": "server_error"}})
            return
        if fault == "timeout":
            await asyncio.sleep(3600)
            return
        answer = self.script.next_answer()
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in payload.get("messages", []))
        if not payload.get("stream"):
            await asyncio.sleep(self.script.ttft)
            await self._json(send, 200, self._completion(model, answer, prompt_tokens))
            return
        await self._stream(send, {**payload, "_fault": fault}, model, answer, prompt_tokens, cut=fault == "cut")

    def _completion(self, model: str, answer: str, prompt_tokens: int) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(_tokens(answer)),
                      "total_tokens": prompt_tokens + len(_tokens(answer))},
        }

    async def _stream(self, send, payload, model: str, answer: str, prompt_tokens: int, cut: bool) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})

        unsent: list[bytes] = []

        async def event(delta: dict[str, Any], finish: str | None = None, usage: dict | None = None,
                        hold: bool = False) -> None:
            chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                     "model": model,
                     "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]}
            if usage:
                chunk["usage"] = usage
            unsent.append(f"data: {json.dumps(chunk)}\n\n".encode())
            if not hold:
                await send({"type": "http.response.body", "body": b"".join(unsent), "more_body": True})
                unsent.clear()

        await asyncio.sleep(self.script.ttft)
        if payload.get("_fault") == "error_event":
            body = json.dumps({"error": {"message": "model overloaded", "type": "server_error"}})
            await send({"type": "http.response.body", "body": f"data: {body}\n\n".encode(), "more_body": False})
            return
        await event({"role": "assistant", "content": ""})
        tokens = _tokens(answer)
        for i, token in enumerate(tokens):
            if cut and i == max(1, len(tokens) // 2):
                raise ConnectionAbortedError("fault injected: stream cut")  # uvicorn drops the connection
            if i and self.script.tokens_per_s:
                await asyncio.sleep(1 / self.script.tokens_per_s)
            last_of_write = (i + 1) % self.script.tokens_per_write == 0 or i == len(tokens) - 1
            await event({"content": token}, hold=not last_of_write)
        await event({}, finish="stop")
        if (payload.get("stream_options") or {}).get("include_usage"):
            await event({}, usage={"prompt_tokens": prompt_tokens, "completion_tokens": len(tokens),
                                   "total_tokens": prompt_tokens + len(tokens)})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    async def _embeddings(self, send, payload: dict[str, Any]) -> None:
        inputs = payload.get("input", [])
        inputs = [inputs] if isinstance(inputs, str) else inputs
        dimensions = int(payload.get("dimensions") or 384)
        data = [{"object": "embedding", "index": i, "embedding": _fake_embedding(str(t), dimensions)}
                for i, t in enumerate(inputs)]
        await self._json(send, 200, {"object": "list", "data": data, "model": payload.get("model", ""),
                                     "usage": {"prompt_tokens": 0, "total_tokens": 0}})


class LLMServer:
    """Runs the fake server on a free loopback port in a background thread."""

    def __init__(self, script: Script | None = None, port: int = 0) -> None:
        self.script = script or Script()
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", port))
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(_App(self.script), log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> LLMServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake LLM server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--ttft-ms", type=float, default=0)
    parser.add_argument("--tokens-per-s", type=float, default=0)
    parser.add_argument("--answer", default=DEFAULT_ANSWER)
    args = parser.parse_args()
    script = Script(default_answer=args.answer, ttft=args.ttft_ms / 1000, tokens_per_s=args.tokens_per_s)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    uvicorn.Server(uvicorn.Config(_App(script), log_level="warning", lifespan="off")).run(sockets=[sock])


if __name__ == "__main__":
    main()
