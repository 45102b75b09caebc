"""Step 3's other half: the question as reuse and the search read it (chat/pipeline.py calls it beside the
route). A follow-up is made to stand alone from the earlier turns (chat/standalone.py) and searched in the
question's stead; most questions are searched as they are asked."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from django.conf import settings

from knowledge.embeddings import NoActiveSpace, QueryVector, aembed_query
from knowledge.selectors import FullTextSide, search_full_text

from . import services
from .db import db_call
from .models import Message
from .selectors import earlier_turns
from .standalone import StandaloneQuery, standalone_full_text, standalone_query, unchanged

if TYPE_CHECKING:
    from .pipeline import StepTimer, Turn

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class SearchedAs:
    """The question as reuse and the search read it, and both halves of its search input."""

    earlier: list[Message]
    query: StandaloneQuery
    vector: QueryVector | None
    full_text: FullTextSide | Exception  # its failure is raised by the search, when one is needed


def full_text_started(question: str, timer: StepTimer) -> asyncio.Task[FullTextSide | Exception]:
    """The question's own full-text half, started as soon as the question as stored (masked) is known, beside
    storing it: most questions are searched as they are asked, and only a rewritten one pays for a second
    embedding and search."""
    return asyncio.ensure_future(_captured(timer.timed("retrieve_full_text", db_call(search_full_text)(
        question, k=settings.KNOWLEDGE_TOP_K))))


async def searched_as(turn: Turn) -> SearchedAs:
    """A follow-up made to stand alone (chat/standalone.py) from the earlier turns, with its embedding
    and full-text half (`turn.full_text`, the question's own, is already under way)."""
    timer, full_text = turn.timer, turn.full_text
    try:
        earlier = await _earlier_turns(turn)
        query = await timer.timed("standalone", _standalone(turn, earlier))
    except BaseException:
        task_drop(full_text)
        raise
    if not query.rewritten:
        vector, own_full_text = await asyncio.gather(_vector_or_none(turn.embedding, turn), full_text)
        return SearchedAs(earlier, query, vector, own_full_text)
    task_drop(full_text)
    task_drop(turn.embedding)
    vector, rewritten_full_text, _ = await asyncio.gather(
        _vector_or_none(timer.timed("embed_standalone", aembed_query(query.text)), turn),
        _captured(timer.timed("retrieve_full_text", db_call(standalone_full_text)(query, k=settings.KNOWLEDGE_TOP_K))),
        db_call(services.question_searched_as)(message_id=turn.question_id, text=query.text),
    )
    return SearchedAs(earlier, query, vector, rewritten_full_text)


async def _captured(work: Awaitable[T]) -> T | Exception:
    try:
        return await work
    except Exception as exc:
        return exc


async def _standalone(turn: Turn, earlier: list[Message]) -> StandaloneQuery:
    if not any(m.role == Message.Role.USER for m in earlier):  # an opening question stands alone
        return unchanged(turn.question)
    return await standalone_query(question=turn.question, earlier=earlier)


async def _earlier_turns(turn: Turn) -> list[Message]:
    if turn.opened is not None:  # an opening question has no history
        return []
    return await db_call(earlier_turns)(conversation_id=turn.conversation_id, before_sequence=turn.question_sequence)


# An answer never waits longer for its question's embedding.
EMBEDDING_WAIT_SECONDS = 10.0


async def _vector_or_none(embedding: Awaitable[QueryVector], turn: Turn) -> QueryVector | None:
    """None when embedding failed or hung: the answer is then made from a full-text search alone."""
    try:
        return await asyncio.wait_for(embedding, EMBEDDING_WAIT_SECONDS)
    except NoActiveSpace:
        logger.info("nothing ingested yet: the question of %s is answered without its embedding", turn.answer_id)
        return None
    except Exception:
        logger.exception("embedding the question of %s failed; full-text search only", turn.answer_id)
        return None


def task_drop(task: asyncio.Task[Any]) -> None:
    """Cancel a task whose result nobody will read, and read its failure so none goes unreported."""
    task.cancel()
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
