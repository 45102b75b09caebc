"""Folding older turns into the conversation's running summary, in a Celery task.

With an LLM configured the model writes the summary (asked to keep what the visitor said about
themselves); offline, or when the model fails, the extractive fold of chat/memory.py does. Either
summary is PII-masked before it is stored.
"""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings

from .llm.gateway import get_gateway, llm_enabled
from .llm.types import ChatMessage, LLMError
from .memory import fold_extractive, messages_to_fold, summary_store, summary_trim
from .models import Conversation, Message
from .safety.pii import pii_mask

logger = logging.getLogger(__name__)

SUMMARY_INSTRUCTIONS = (
    "Update the running summary of a conversation between a visitor and an assistant. Keep every "
    "fact the visitor stated about themselves (goals, level, equipment, injuries, preferences) and "
    "the topics covered, drop small talk. Write at most {tokens} tokens of plain text, no preamble."
)


def conversation_fold(*, conversation_id: str, before_sequence: int) -> bool:
    conversation = Conversation.objects.get(pk=conversation_id)
    turns = messages_to_fold(conversation, before_sequence)
    if not turns:
        return False
    if llm_enabled():
        summary = asyncio.run(_llm_summary(conversation.summary, turns))
    else:
        summary = fold_extractive(conversation.summary, turns)
    # The turns were stored masked; this also catches what a model wrote back and turns stored before masking.
    summary = pii_mask(summary).text
    return summary_store(conversation_id=conversation.pk, summary=summary, through=turns[-1].sequence)


async def _llm_summary(previous: str, turns: list[Message]) -> str:
    transcript = "\n".join(f"{'Visitor' if m.role == Message.Role.USER else 'Assistant'}: {m.text}" for m in turns)
    messages = [
        ChatMessage("system", SUMMARY_INSTRUCTIONS.format(tokens=settings.CHAT_SUMMARY_TOKENS)),
        ChatMessage("user", f"Summary so far:\n{previous or '(none)'}\n\nNew turns:\n{transcript}"),
    ]
    try:
        parts = [delta.text async for delta in get_gateway().stream(messages) if delta.text]
    except LLMError as exc:
        logger.warning("LLM summary failed (%s); folding extractively", exc.code)  # its text may quote the turns
        return fold_extractive(previous, turns)
    return summary_trim("".join(parts).strip()) or fold_extractive(previous, turns)
