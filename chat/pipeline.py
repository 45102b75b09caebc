"""The answer pipeline: what happens to a question, in order, and what happens when a step fails.

Every entry point (websocket consumer, REST API, tests, benchmarks) calls `open_turn` and then
`answer_turn` (or `answer`, both): a stored question whose answer never runs stays `streaming`
until the beat job fails it (chat.tasks.fail_stale_streaming_answers).

  open_turn
    1. guard          size limits and the PII patterns (chat/guard.py); the query's embedding starts
                      as a task. GuardError: nothing is stored.
       screen         beside the embedding: names and places masked (NER, chat/safety/pii.py), the
                      injection detector (chat/safety/injection.py).
    2. store          the masked question (its original sealed when anything was masked) and an
                      empty answer in `streaming` state (chat/services.py). NotFound (not the
                      visitor's conversation): nothing is stored.
  answer_turn         From here on nothing is lost: a failure in any step fails the answer
                      (`failed`, the partial text kept, an `error` frame with a stable code),
                      never the question.
    3. route          prompt version and model, language, profile, summary (chat/route.py), beside
       searched as    the question as reuse and the search read it: a follow-up made to stand alone
                      from the earlier turns (chat/standalone.py; its text kept on the question), with
                      its embedding and the full-text half of its search; the question's moderation
                      beside all of it when the policy lets it refuse or hold. The safety policy
                      (chat/safety/screening.py) then refuses (a fixed sentence, nothing generated or
                      reused), holds the answer for a trainer, or flags it.
    4. reuse          an approved answer, then the answer cache (chat/reuse/), keyed on the question
                      as searched, awaited together with
    5. retrieve       the nearest chunks, fused with the full-text half (knowledge.selectors), those
                      in the conversation's language first where the knowledge base has them.
                      A reused or refused answer is sent whether the search failed or not.
    6. build context  chat/context.py, no I/O.
    7. generate       streamed to the sink (chat/generation.py); a reused answer streams alike. With
                      an LLM budget spent (chat/budgets.py), composed offline and said so.
    8. finish         the answer moderated (after streaming, or before when the policy may refuse or
                      hold answers), beside the question when its moderation only flags; citations,
                      confidence, cost; the answer stored with personal data masked, then cached,
                      queued for review when unsure or flagged, a reuse counted (chat/finish.py); what
                      follows the stored answer may fail without failing it. Its monitoring fact is
                      recorded after the `end` frame is sent: the visitor never waits for it.

Two failures are absorbed on purpose, because each only costs work, never the answer: a failed
embedding leaves full-text search alone and no reuse; a failed reuse lookup is a miss.

What runs at the same time is started in these places: in `open_turn` the embedding task (the screen
runs beside it) and the full-text half (beside storing the question); the `asyncio.gather`s in
`answer_turn` (the question's moderation beside `prepare`, or beside the answer's); those in `prepare`
and `searched_as` (chat/searched.py). A follow-up that is rewritten drops the question's own embedding
and full-text half for its rewrite's. Database work runs on a few database threads (`db_call`,
chat/db.py). Each step's duration (ms) is stored with
the answer in `Message.timings`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from django.conf import settings

from config.logging import bind
from knowledge.embeddings import QueryVector, aembed_query
from knowledge.selectors import FullTextSide, SearchHit, search

from . import services
from .context import Context, build_context
from .db import db_call
from .finish import Finished, fact_record, finish_generated, finish_refused, finish_reused, record_failure
from .generation import generate, stream_stored
from .guard import GuardedText, guard_fast, guard_names
from .handoff_intent import person_requested
from .llm.gateway import llm_enabled
from .llm.types import LLMError
from .models import Conversation, Message
from .reuse.selectors import Reused, ReuseQuery, reuse_find
from .route import Route, route_question
from .safety.injection import InjectionVerdict, injection_check
from .safety.moderation import ModerationVerdict, moderate
from .safety.originals import original_keep
from .safety.policy import SafetyPolicy, asafety_policy
from .safety.screening import (
    Screening,
    answer_held_back,
    answer_screening,
    question_moderated,
    question_moderation_decides,
    question_screening,
)
from .searched import SearchedAs, full_text_started, searched_as, task_drop
from .standalone import StandaloneQuery
from .streams import AnswerSink, NullSink

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class StepTimer:
    started: float = field(default_factory=time.perf_counter)
    steps: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        begun = time.perf_counter()
        try:
            yield
        finally:
            self.steps[name] = round((time.perf_counter() - begun) * 1000, 2)

    async def timed(self, name: str, work: Awaitable[T]) -> T:
        with self.step(name):
            return await work

    def elapsed_ms(self, until: float | None = None) -> int:
        return round(((until or time.perf_counter()) - self.started) * 1000)


@dataclass(frozen=True)
class Turn:
    """A stored question and the answer that is to follow it."""

    visitor_id: str
    conversation_id: uuid.UUID
    question_id: uuid.UUID
    question_sequence: int
    answer_id: uuid.UUID
    question: str  # PII-masked: what is stored and what the LLM sees
    injection: InjectionVerdict
    repeated: bool  # the client re-sent a question already stored: replay its answer, never rerun it
    opened: Conversation | None  # the conversation this turn created (what it holds is known)
    embedding: asyncio.Task[QueryVector]
    full_text: asyncio.Task[FullTextSide | Exception]  # the question's own full-text half (chat/searched.py)
    timer: StepTimer

    @property
    def injection_suspected(self) -> bool:
        return self.injection.suspected


@dataclass(frozen=True)
class Prepared:
    """What steps 3–5 found: a stored answer to serve, or what to generate from."""

    route: Route
    query: StandaloneQuery  # what reuse and the search read: a follow-up made to stand alone
    vector: QueryVector | None  # the query's embedding
    reused: Reused | None
    hits: list[SearchHit]
    earlier: list[Message]
    search_failure: BaseException | None = None  # moot when the answer is reused or refused


class PersonHolds(Exception):
    """The question is stored and goes to the trainer who holds (or will take) the conversation: the
    assistant does not answer while a person is in it."""

    def __init__(self, conversation_id: uuid.UUID, question_id: uuid.UUID) -> None:
        super().__init__("a person holds this conversation")
        self.conversation_id, self.question_id = conversation_id, question_id


# --- steps 1-2 ------------------------------------------------------------------------------------------


async def open_turn(
    *, visitor_id: str, conversation_id: object | None, text: object, client_msg_id: str, channel: str
) -> Turn:
    """Guard and store the question. Raises GuardError or services.NotFound, with nothing stored, or
    PersonHolds with the question stored."""
    timer = StepTimer()
    with timer.step("guard"):
        fast = await _guarded_fast(text)
    embedding = asyncio.ensure_future(timer.timed("embed", aembed_query(fast.text)))
    started: list[asyncio.Task[Any]] = [embedding]
    try:
        with timer.step("screen"):  # names, places and the injection detector, beside the embedding
            policy = await asafety_policy()
            # On a database thread: the NER pass reads the knowledge base's public words now and then.
            guarded, injection = await db_call(_screen)(fast, policy.injection_threshold)
        full_text = full_text_started(guarded.text, timer)
        started.append(full_text)
        with timer.step("store"):
            records = await db_call(_store)(
                visitor_id=visitor_id, conversation_id=conversation_id, channel=channel, guarded=guarded,
                client_msg_id=client_msg_id,
            )
    except BaseException:
        for task in started:
            task_drop(task)
        raise
    if records.repeated or records.answer is None:
        for task in started:
            task_drop(task)
    if records.answer is None:
        raise PersonHolds(records.conversation_id, records.question.pk)
    return Turn(
        visitor_id=visitor_id, conversation_id=records.conversation_id, question_id=records.question.pk,
        question_sequence=records.question.sequence, answer_id=records.answer.pk, question=records.question.text,
        injection=injection, repeated=records.repeated, opened=records.opened,
        embedding=embedding, full_text=full_text, timer=timer,
    )


# A question this short is guarded on the event loop (about a millisecond); a longer one off it, since
# every other socket of the process would wait for it, but the hop to a thread waits for the interpreter
# lock too, several milliseconds when the process is busy.
GUARD_ON_LOOP_CHARS = 300


async def _guarded_fast(text: object) -> GuardedText:
    if isinstance(text, str) and len(text) <= GUARD_ON_LOOP_CHARS:
        return guard_fast(text)
    return await asyncio.to_thread(guard_fast, text)


def _screen(fast: GuardedText, injection_threshold: float | None) -> tuple[GuardedText, InjectionVerdict]:
    """The guard's slow half, on a database thread: the NER pass over what the patterns left, and the
    injection detector (chat/safety/injection.py)."""
    return guard_names(fast), injection_check(fast.text, injection_threshold)


def _store(*, visitor_id: str, conversation_id: object | None, channel: str, guarded: GuardedText,
           client_msg_id: str) -> services.TurnRecords:
    records = services.turn_start(
        visitor_id=visitor_id, conversation_id=conversation_id, channel=channel, text=guarded.text,
        client_msg_id=client_msg_id, pii_redacted=bool(guarded.pii_found),
        person_requested=person_requested(guarded.text),
    )
    if guarded.original_sealed and not records.repeated:
        original_keep(message_id=records.question.pk, sealed=guarded.original_sealed)
    return records


# --- steps 3-8 ------------------------------------------------------------------------------------------


async def answer_turn(turn: Turn, sink: AnswerSink) -> dict[str, Any]:
    """Answer a stored question; returns the `end` or `error` frame it sent to the sink."""
    if turn.repeated:
        raise ValueError("a repeated question is replayed from its stored answer, never answered again")
    streamed: list[str] = []  # the tokens sent so far: what a failure keeps
    try:
        policy = await asafety_policy()
        if question_moderation_decides(policy):  # nothing may be sent before its verdict
            prepared, moderation = await asyncio.gather(prepare(turn), _moderated(turn.question, policy))
        else:  # it only marks the answer: asked once the answer is written (`_question_marked`)
            prepared, moderation = await prepare(turn), None
        screening = question_screening(injection=turn.injection, moderation=moderation, policy=policy)
        if screening.refusal:
            finished = await serve_refusal(turn, prepared, sink, streamed, screening, policy)
        elif prepared.reused is not None and not screening.hold:
            finished = await serve_reused(turn, prepared, sink, streamed, screening, policy)
        elif prepared.search_failure is not None:
            raise prepared.search_failure
        else:
            finished = await generate_answer(turn, prepared, sink, streamed, screening, policy)
    except asyncio.CancelledError as exc:  # the process is shutting down: the answer is not left streaming
        await asyncio.shield(fail(turn, exc, streamed))
        raise
    except Exception as exc:
        frame = await fail(turn, exc, streamed)
        await sink.error(frame)
        return frame
    try:
        await sink.end(finished.frame)
    finally:  # the answer is stored: its fact is recorded even when the sink failed
        await db_call(fact_record)(finished.fact)
    return finished.frame


async def _moderated(text: str, policy: SafetyPolicy) -> ModerationVerdict:
    """Moderation of a question or an answer, by the provider SAFETY_MODERATION_PROVIDER names. Never
    raises (chat/safety/moderation.py)."""
    return await moderate(text, policy.moderation_threshold)


async def _question_marked(turn: Turn, screening: Screening, policy: SafetyPolicy) -> Screening:
    """The screening with the question's moderation when it was left until the answer was written (under
    `flag` it marks the answer for a trainer and never changes what is sent); as it is otherwise."""
    if question_moderation_decides(policy):
        return screening
    return question_moderated(screening, await _moderated(turn.question, policy), policy)


async def _answer_moderated(text: str, policy: SafetyPolicy) -> ModerationVerdict | None:
    return await _moderated(text, policy) if text else None


async def prepare(turn: Turn) -> Prepared:
    """Steps 3–5: route and the question as searched, then reuse and retrieve. A search failure is
    kept, not raised: a reused or refused answer does not need the search."""
    timer = turn.timer
    route, searched = await asyncio.gather(
        timer.timed("route", db_call(route_question)(
            conversation_id=turn.conversation_id, visitor_id=turn.visitor_id, question=turn.question,
            question_id=turn.question_id, opened=turn.opened,
        )),
        searched_as(turn),
    )
    query, vector = searched.query, searched.vector
    reused, hits = await asyncio.gather(
        timer.timed("reuse", db_call(find_reusable)(turn, route, query, vector)),
        timer.timed("retrieve", _retrieved(searched, route)),
        return_exceptions=True,
    )
    if isinstance(reused, BaseException):
        raise reused  # find_reusable turns its own failures into a miss: this is not one of them
    failure, found = (hits, []) if isinstance(hits, BaseException) else (None, hits)
    return Prepared(route=route, query=query, vector=vector, reused=reused, hits=found,
                    earlier=searched.earlier, search_failure=failure)


async def _retrieved(searched: SearchedAs, route: Route) -> list[SearchHit]:
    if isinstance(searched.full_text, Exception):
        raise searched.full_text
    return await db_call(retrieve)(searched.query.text, searched.vector, searched.full_text, route.language)


def find_reusable(turn: Turn, route: Route, query: StandaloneQuery, vector: QueryVector | None) -> Reused | None:
    """Step 4, on a database thread: a read, keyed on the question as searched ("How many sets?" after
    squats is not "How many sets?" after bench presses); the hit is counted when the answer is served."""
    if vector is None:
        return None
    reuse_query = ReuseQuery(
        question=query.text, vector=vector, scope=route.scope(vector), prompt_name=route.prompt.name,
        visitor_id=turn.visitor_id,
        model=(route.prompt.model or settings.LLM_MODEL) if llm_enabled() else "",
        system_prompt=route.prompt.system_prompt,
    )
    try:
        return reuse_find(reuse_query)
    except Exception:
        logger.exception("reuse lookup for %s failed; answering normally", turn.answer_id)
        return None


def retrieve(question: str, vector: QueryVector | None, full_text: FullTextSide, language: str) -> list[SearchHit]:
    """Step 5, on a database thread: the conversation's language first where the knowledge base has it."""
    return search(query=question, vector=vector, k=settings.KNOWLEDGE_TOP_K, full_text=full_text,
                  prefer_language=language)


async def serve_reused(
    turn: Turn, prepared: Prepared, sink: AnswerSink, streamed: list[str], screening: Screening,
    policy: SafetyPolicy,
) -> Finished:
    """Steps 7–8 for a stored answer."""
    reused = cast(Reused, prepared.reused)
    with turn.timer.step("generate"):
        await stream_stored(reused.text, sink, streamed)
    screening = await _question_marked(turn, screening, policy)
    with turn.timer.step("finish"):
        return await db_call(finish_reused)(
            turn=turn, route=prepared.route, reused=reused, vector=cast(QueryVector, prepared.vector),
            searched_as=prepared.query.text, screening=screening,
        )


async def serve_refusal(
    turn: Turn, prepared: Prepared, sink: AnswerSink, streamed: list[str], screening: Screening,
    policy: SafetyPolicy,
) -> Finished:
    """Steps 7–8 for a question the safety policy refuses: its fixed sentence, nothing generated or reused."""
    with turn.timer.step("generate"):
        await stream_stored(screening.refusal, sink, streamed)
    screening = await _question_marked(turn, screening, policy)
    with turn.timer.step("finish"):
        return await db_call(finish_refused)(turn=turn, route=prepared.route, vector=prepared.vector,
                                             screening=screening)


async def generate_answer(
    turn: Turn, prepared: Prepared, sink: AnswerSink, streamed: list[str], screening: Screening,
    policy: SafetyPolicy,
) -> Finished:
    """Steps 6–8. An answer that may be held (REVIEW_HOLD_BELOW, a hold the question's screening asks for,
    answers moderated before they are sent) is written whole before its first token is sent."""
    with turn.timer.step("build_context"):
        context: Context = build_context(
            question=turn.question, injection_suspected=screening.reminder, route=prepared.route,
            earlier=prepared.earlier, hits=prepared.hits,
        )
    held_back = settings.REVIEW_HOLD_BELOW is not None or bool(screening.hold) or answer_held_back(policy)
    with turn.timer.step("generate"):
        generation = await generate(
            question=turn.question, model=prepared.route.prompt.model, context=context,
            sink=NullSink() if held_back else sink, streamed=[] if held_back else streamed,
            options=prepared.route.generation_options, budget_spent=prepared.route.budget_spent,
        )
    with turn.timer.step("moderate_answer"):  # the question's too when it was left until now
        moderation, screening = await asyncio.gather(
            _answer_moderated(generation.text, policy), _question_marked(turn, screening, policy))
    screening = answer_screening(screening, moderation=moderation, leaked=generation.leaked, policy=policy)
    if screening.refusal and held_back:  # the answer was never sent: the refusal goes instead
        await stream_stored(screening.refusal, sink, streamed)
    with turn.timer.step("finish"):
        finished = await db_call(finish_generated)(
            turn=turn, route=prepared.route, vector=prepared.vector, context=context, generation=generation,
            screening=screening,
        )
    if held_back and finished.frame["type"] == "end" and not screening.refusal:
        await stream_stored(generation.text, sink, streamed)
    return finished


async def fail(turn: Turn, exc: BaseException, streamed: list[str]) -> dict[str, Any]:
    """The one failure path: the answer is marked failed with what was streamed; the question stays.
    Never raises: the visitor gets the error frame even when recording the failure fails too."""
    if isinstance(exc, LLMError):
        code, message = exc.code, "The assistant could not answer right now. Please try again."
    else:
        logger.error("answer %s failed", turn.answer_id, exc_info=exc)
        code, message = "internal_error", "Something went wrong while answering."
    try:
        await db_call(record_failure)(
            answer_id=turn.answer_id, conversation_id=turn.conversation_id, partial_text="".join(streamed),
            error=f"{code}: {exc}", timer=turn.timer,
        )
    except Exception:
        logger.exception("could not record the failure of answer %s", turn.answer_id)
    return {"type": "error", "code": code, "message": message, "message_id": str(turn.answer_id)}


# --- running a turn ------------------------------------------------------------------------------------


_background: set[asyncio.Task[dict[str, Any]]] = set()


def launch_turn(turn: Turn, sink: AnswerSink) -> asyncio.Task[dict[str, Any]]:
    """Answer in the background: the visitor closing the socket does not stop the answer."""
    with bind(conversation_id=turn.conversation_id, answer_id=turn.answer_id):  # the task keeps what it starts with
        task = asyncio.get_running_loop().create_task(answer_turn(turn, sink))
    _background.add(task)
    task.add_done_callback(_background_done)
    return task


def _background_done(task: asyncio.Task[dict[str, Any]]) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:  # the sink failed after the answer ended
        logger.error("answering in the background failed", exc_info=task.exception())


async def answer(
    *, visitor_id: str, conversation_id: object | None, text: object, client_msg_id: str, channel: str,
    sink: AnswerSink,
) -> tuple[Turn, dict[str, Any]]:
    """Both halves, for request/response callers; a repeated question returns no frame."""
    turn = await open_turn(
        visitor_id=visitor_id, conversation_id=conversation_id, text=text, client_msg_id=client_msg_id,
        channel=channel,
    )
    if turn.repeated:
        return turn, {}
    with bind(conversation_id=turn.conversation_id, answer_id=turn.answer_id):
        return turn, await answer_turn(turn, sink)
