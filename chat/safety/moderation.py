"""Moderation of questions and answers: OpenAI's moderation endpoint or an offline classifier
(chat/safety/trained/moderation.*), as SAFETY_MODERATION_PROVIDER says ("auto": the endpoint when an LLM
is configured). When the endpoint fails the classifier decides, and the endpoint at that URL is left alone
for SAFETY_MODERATION_RETRY_SECONDS: a server without /v1/moderations (vLLM, Ollama, llama.cpp) costs one
failed call that often, not two a turn. Never raises: moderation must not be why a visitor gets no answer."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings

from ..llm.gateway import get_gateway, llm_enabled
from .linear import LinearTextModel
from .train import TRAINED

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModerationVerdict:
    flagged: bool
    categories: tuple[str, ...]  # OpenAI's category names ("harassment", "self-harm", ...)
    source: str  # "openai" or "offline"

    @property
    def category_text(self) -> str:
        """What a trainer reads in the review queue."""
        return ", ".join(self.categories) or "unspecified"


@lru_cache(maxsize=1)
def _model() -> LinearTextModel:
    return LinearTextModel.load(TRAINED / "moderation")


def moderate_offline(text: str, threshold: float | None = None) -> ModerationVerdict:
    """`threshold`: the policy's (chat.safety.policy); by default SAFETY_MODERATION_THRESHOLD when set,
    else the one chosen in training."""
    model = _model()
    probabilities = model.probabilities(text)
    limit = threshold or settings.SAFETY_MODERATION_THRESHOLD or model.thresholds["flagged"]
    if probabilities.pop("flagged") < limit:
        return ModerationVerdict(False, (), "offline")
    likely = tuple(name for name, p in probabilities.items() if p >= 0.5)
    return ModerationVerdict(True, likely or (max(probabilities, key=lambda k: probabilities[k]),), "offline")


async def moderate(text: str, threshold: float | None = None) -> ModerationVerdict:
    """`threshold` applies to the offline classifier only, which runs off the event loop."""
    endpoint = settings.OPENAI_BASE_URL
    if not _endpoint_moderates() or not _endpoint_allowed(endpoint):
        return await asyncio.to_thread(moderate_offline, text, threshold)
    try:
        verdict = await _moderate_openai(text)
    except Exception:
        _pause_endpoint(endpoint)
        logger.warning("moderation endpoint failed; the offline classifier decides for %ss",
                       settings.SAFETY_MODERATION_RETRY_SECONDS, exc_info=True)
        return await asyncio.to_thread(moderate_offline, text, threshold)
    _endpoint_down_until.pop(endpoint, None)
    return verdict


def _endpoint_moderates() -> bool:
    provider = settings.SAFETY_MODERATION_PROVIDER
    return provider == "openai" or (provider == "auto" and llm_enabled())


# Per process, by base URL: until when (time.monotonic()) the endpoint there is not asked.
_endpoint_down_until: dict[str, float] = {}


def _endpoint_allowed(endpoint: str) -> bool:
    """Whether to ask the endpoint now. Once its pause is over, one call asks again (the others keep to
    the classifier until it succeeds or fails)."""
    until = _endpoint_down_until.get(endpoint)
    now = time.monotonic()
    if until is None:
        return True
    if now < until:
        return False
    _pause_endpoint(endpoint)  # this call probes; the rest wait for its outcome
    return True


def _pause_endpoint(endpoint: str) -> None:
    _endpoint_down_until[endpoint] = time.monotonic() + settings.SAFETY_MODERATION_RETRY_SECONDS


async def _moderate_openai(text: str) -> ModerationVerdict:
    client = get_gateway()._client()  # the gateway's client for this event loop (closed with it)
    response = await client.moderations.create(
        model=settings.SAFETY_MODERATION_MODEL, input=text, timeout=settings.SAFETY_MODERATION_TIMEOUT_SECONDS)
    result: dict[str, Any] = response.results[0].model_dump(by_alias=True)
    categories = tuple(name for name, hit in result["categories"].items() if hit)
    return ModerationVerdict(bool(result["flagged"]), categories, "openai")
