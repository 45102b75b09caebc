"""Moderation of questions and answers: OpenAI's moderation endpoint when an LLM is configured,
an offline classifier (chat/safety/trained/moderation.*) otherwise or when the endpoint fails.
Never raises: moderation must not be why a visitor gets no answer."""

from __future__ import annotations

import logging
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
    """`threshold` applies to the offline classifier only."""
    if not llm_enabled():
        return moderate_offline(text, threshold)
    try:
        return await _moderate_openai(text)
    except Exception:
        logger.warning("moderation endpoint failed; the offline classifier decides", exc_info=True)
        return moderate_offline(text, threshold)


async def _moderate_openai(text: str) -> ModerationVerdict:
    client = get_gateway()._client()  # the gateway's client for this event loop (closed with it)
    response = await client.moderations.create(
        model=settings.SAFETY_MODERATION_MODEL, input=text, timeout=settings.SAFETY_MODERATION_TIMEOUT_SECONDS)
    result: dict[str, Any] = response.results[0].model_dump(by_alias=True)
    categories = tuple(name for name, hit in result["categories"].items() if hit)
    return ModerationVerdict(bool(result["flagged"]), categories, "openai")
