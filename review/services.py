"""Review's writes: the queue trainers work (signals in, guarded state changes with their audit rows)
and approved answers (saved, imported, embedded, counted)."""

from __future__ import annotations

import csv
import difflib
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from knowledge.embeddings import NoActiveSpace, QueryVector, SpaceRef, active_space_ref, embed_texts
from knowledge.services import embedding_space_ensure

from .evaluation import evaluation_case_add_approved
from .learning import value_terms
from .models import ApprovedAnswer, ReviewDecision, ReviewItem
from .selectors import claim_cutoff
from .signals import answer_approved, answer_rejected

logger = logging.getLogger(__name__)
Status, Reason, Action = ReviewItem.Status, ReviewItem.Reason, ReviewDecision.Action
# A visitor's own complaint about an answer: the only signal that reopens an approved one.
COMPLAINTS = frozenset({Reason.THUMBS_DOWN, Reason.HANDOFF})


class ReviewConflict(Exception):
    """The item's state does not allow the action; `code` is stable for the admin to act on:
    `claimed_by_other`, `claim_lapsed`, `not_claimed`, `already_decided`, `no_question`, `empty_answer`,
    `refused`, `not_in_group`, `grouped`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# --- signals into the queue ------------------------------------------------------------------------


def review_item_screen(
    *, message_id: UUID, confidence: float, cited: int, question: QueryVector | None = None
) -> ReviewItem | None:
    """Queue a fresh answer the pipeline is unsure of, or that cites nothing from the knowledge base.
    `question`: the question as the pipeline embedded it, kept for density and grouping (otherwise the
    recompute embeds it)."""
    reasons = [Reason.LOW_CONFIDENCE] if confidence < settings.REVIEW_CONFIDENCE_THRESHOLD else []
    if not cited:
        reasons.append(Reason.NO_KB_MATCH)
    if not reasons:
        return None
    return review_item_enqueue(message_id=message_id, reasons=reasons, priority=1 - confidence, question=question)


def review_item_enqueue(
    *, message_id: UUID, reasons: Sequence[str], priority: float = 0.0, feedback_reason: str = "",
    question: QueryVector | None = None, reason_text: str = "",
) -> ReviewItem:
    """Queue an answer, or add these reasons to its item: a new signal raises the learning value, never
    lowers it. A decided item stays decided, except that a visitor's complaint reopens an approved one
    (the approval did not serve that visitor; a rejected answer is never served anyway). An item parked
    by skips comes back on any new signal."""
    codes = [Reason(reason) for reason in reasons]
    if not codes:
        raise ValueError("an answer is queued for at least one reason")
    with transaction.atomic():  # the row is locked: signals and trainers' actions on it take turns
        item, _ = ReviewItem.objects.select_for_update().get_or_create(
            message_id=message_id, defaults={"priority": priority, "reason": codes[-1].label}
        )
        before = _snapshot(item)
        if question is not None and item.question_embedding is None:
            item.question_embedding, item.space_id = question.vector, question.space_id
        _merge_signal(item, codes, priority, feedback_reason)
        item.reason = reason_text[:200] or item.reason  # why, in a trainer's words (a flag's categories)
        reopened = _reopen(item, codes)
        item.save()
        if reopened:
            ReviewDecision.objects.create(item=item, action=Action.REOPEN, before=before, after=_snapshot(item),
                                          note=", ".join(codes))
        transaction.on_commit(learning_values_recompute_soon)
        complaints = COMPLAINTS.intersection(codes)
        if item.status == Status.GROUPED and item.representative_id and complaints:
            # the group's item is what a trainer decides: the complaint raises it (after this row's
            # lock is released, so that no two item locks are ever held here)
            leader, raised = item.representative_id, sorted(complaints)
            transaction.on_commit(lambda: review_item_enqueue(message_id=_message_of(leader), reasons=raised))
    return item


def review_item_unhold(*, message_id: UUID) -> None:
    """The visitor got the held answer as it was (its hold ran out): still worth a trainer's look, no
    longer first in the queue."""
    with transaction.atomic():
        item = ReviewItem.objects.select_for_update().filter(message_id=message_id).first()
        if item is None or Reason.HELD not in item.reasons:
            return
        item.reasons = [reason for reason in item.reasons if reason != Reason.HELD]
        terms = value_terms(priority=item.priority, reasons=item.reasons, skip_count=item.skip_count,
                            density=item.density)
        item.learning_value, item.value_terms = terms["total"], terms
        item.reason = Reason(item.reasons[-1]).label if item.reasons else "held, then sent as it was"
        item.save(update_fields=["reasons", "learning_value", "value_terms", "reason"])


def _message_of(item_id: int) -> UUID:
    return ReviewItem.objects.values_list("message_id", flat=True).get(pk=item_id)


def learning_values_recompute_soon() -> None:
    """A new signal changes densities and groups: recompute within REVIEW_RECOMPUTE_DELAY_SECONDS, once for
    all the signals of that time (the beat job recomputes anyway)."""
    delay = settings.REVIEW_RECOMPUTE_DELAY_SECONDS
    if cache.add("review:learning-values-recompute", 1, timeout=delay):
        try:
            # retry=False: this runs on the answer path, which must not wait on a broker that is down
            current_app.send_task("review.tasks.learning_values_recompute", countdown=delay, retry=False)
        except Exception:  # no broker: the beat job still recomputes
            logger.warning("could not schedule the learning values' recompute", exc_info=True)


def _merge_signal(item: ReviewItem, codes: list[ReviewItem.Reason], priority: float, feedback: str) -> None:
    item.reasons = [*item.reasons, *(code for code in dict.fromkeys(codes) if code not in item.reasons)]
    item.reason = codes[-1].label
    item.priority = max(item.priority, priority)
    item.feedback_reason = feedback[:200] or item.feedback_reason
    # The density of the last recompute stands until the next one, which this signal schedules.
    terms = value_terms(priority=item.priority, reasons=item.reasons, skip_count=item.skip_count, density=item.density)
    item.learning_value = max(item.learning_value, terms["total"])
    item.value_terms = terms


def _reopen(item: ReviewItem, codes: list[ReviewItem.Reason]) -> bool:
    approved = item.status in (Status.APPROVED, Status.EDITED)
    if not (item.status == Status.SKIPPED or (approved and COMPLAINTS.intersection(codes))):
        return False
    item.status, item.claimed_by, item.claimed_at = Status.PENDING, None, None
    item.decided_by, item.decided_at = None, None
    return True


# --- a trainer's actions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Move:
    """One guarded state change: the states it may leave (`allowed`) and what it writes."""

    action: str
    allowed: Q
    changes: dict[str, Any]
    note: str = ""
    diff: str = ""
    before: dict[str, Any] = field(default_factory=dict)  # besides the item's state
    after: dict[str, Any] = field(default_factory=dict)


def review_item_claim(*, item: ReviewItem, user: User) -> ReviewItem:
    """Take an item: other trainers see it claimed until the claim lapses (REVIEW_CLAIM_MINUTES).
    Claiming one's own claim again renews it."""
    now = timezone.now()
    claimable = Q(status__in=[Status.PENDING, Status.SKIPPED]) | Q(status=Status.CLAIMED, claimed_by=user)
    lapsed = Q(status=Status.CLAIMED, claimed_at__lt=claim_cutoff(now))
    return _transition(item, user, now, _Move(
        Action.CLAIM, claimable | lapsed, {"status": Status.CLAIMED, "claimed_by": user, "claimed_at": now}
    ))


def review_item_release(*, item: ReviewItem, user: User) -> ReviewItem:
    """Give a claimed item back to the queue untouched (a lapsed claim too: nobody took it since)."""
    return _transition(item, user, timezone.now(), _Move(
        Action.RELEASE, Q(status=Status.CLAIMED, claimed_by=user),
        {"status": Status.PENDING, "claimed_by": None, "claimed_at": None},
    ))


def review_item_skip(*, item: ReviewItem, reviewer: User) -> ReviewItem:
    """Back to the queue for another trainer, a little lower (REVIEW_WEIGHTS["skip"]); after
    REVIEW_MAX_SKIPS skips it leaves the queue until a new signal brings it back."""
    now = timezone.now()
    # A held answer is never parked: its visitor waits for a decision (a safety hold never runs out).
    parked = When(Q(skip_count__gte=settings.REVIEW_MAX_SKIPS - 1) & ~Q(reasons__contains=[Reason.HELD]),
                  then=Value(Status.SKIPPED))
    return _transition(item, reviewer, now, _Move(Action.SKIP, _live_claim(reviewer, now), {
        "status": Case(parked, default=Value(Status.PENDING)), "claimed_by": None, "claimed_at": None,
        "skip_count": F("skip_count") + 1, "learning_value": F("learning_value") - settings.REVIEW_WEIGHTS["skip"],
    }))


def review_item_reject(*, item: ReviewItem, reviewer: User, reason: str) -> ReviewItem:
    """The answer and every cache entry with it are never served again, nor an answer approved from it.
    From the reviewer's live claim, or straight from the queue (the list's bulk action)."""
    now = timezone.now()
    unclaimed = Q(status__in=[Status.PENDING, Status.SKIPPED])
    move = _Move(Action.REJECT, unclaimed | _live_claim(reviewer, now),
                 {"status": Status.REJECTED, "decided_by": reviewer, "decided_at": now}, note=reason)
    with transaction.atomic():  # chat blocks the cache entries in this transaction
        rejected = _transition(item, reviewer, now, move)
        ApprovedAnswer.objects.filter(review_item=rejected, is_active=True).update(is_active=False)
        answer_rejected.send(sender=ReviewItem, message_id=rejected.message_id)
        # The questions it represented had answers of their own: back to the queue, to be grouped anew.
        if ReviewItem.objects.filter(representative=rejected, status=Status.GROUPED).update(
                status=Status.PENDING, representative=None):
            transaction.on_commit(learning_values_recompute_soon)
    return rejected


def review_item_approve(*, item: ReviewItem, reviewer: User, text: str | None = None) -> ApprovedAnswer:
    """Approve the answer as it is, or edited (`text`, kept with a diff to the original). Served to the
    next paraphrase of its question at once; only by the trainer whose claim is live. Matched on the question
    as search read it: a follow-up's standalone form ("How many sets of squats?", not "How many sets?").
    A refusal of the safety policy is never approved (nor, so, reused or exported): it can be rejected."""
    item = ReviewItem.objects.select_related("message__reply_to", "message__conversation").get(pk=item.pk)
    answer = _approved_answer(item, reviewer, text)
    covering = _covering_answers(item, answer)
    _embed_questions([answer, *covering.values()])  # before the transaction, which must not wait on the embedder
    now, edited = timezone.now(), bool(answer.original_answer)
    move = _Move(
        Action.EDIT if edited else Action.APPROVE, _live_claim(reviewer, now),
        {"status": Status.EDITED if edited else Status.APPROVED, "decided_by": reviewer, "decided_at": now},
        diff=_diff(answer.original_answer, answer.answer) if edited else "",
        before={"answer": item.message.text}, after={"answer": answer.answer},
    )
    with transaction.atomic():
        _transition(item, reviewer, now, move)
        ApprovedAnswer.objects.filter(review_item=item, is_active=True).update(is_active=False)
        answer.save()
        answer_approved.send(sender=ReviewItem, message_id=item.message_id, text=answer.answer)
        evaluation_case_add_approved(answer=answer)  # the grouped paraphrases share it: one case, not several
        _cover_members(item, covering, reviewer, now, move.changes["status"], answer.answer)
    return answer


def review_item_ungroup(*, item: ReviewItem, member_id: int, reviewer: User) -> ReviewItem:
    """A trainer says a question grouped under the item is not the same question: it leaves the group,
    back to the queue on its own, and is never grouped under this item again. Needs the trainer's
    live claim on the item (they are reading it)."""
    now = timezone.now()
    with transaction.atomic():
        leader = ReviewItem.objects.select_for_update().get(pk=item.pk)  # the leader first, as approval locks
        if not ReviewItem.objects.filter(_live_claim(reviewer, now), pk=item.pk).exists():
            raise _conflict(leader, reviewer, now)
        member = ReviewItem.objects.select_for_update().filter(
            pk=member_id, representative=item, status=Status.GROUPED).first()
        if member is None:
            raise ReviewConflict("not_in_group", "That question is no longer grouped under this answer.")
        before = _snapshot(member)
        member.status, member.representative = Status.PENDING, None
        member.not_grouped_with = [*member.not_grouped_with, item.pk]
        member.save(update_fields=["status", "representative", "not_grouped_with"])
        ReviewItem.objects.filter(pk=item.pk).update(represents=F("represents") - 1)
        ReviewDecision.objects.create(item=member, action=Action.UNGROUP, user=reviewer, at=now, before=before,
                                      after=_snapshot(member), note=f"not the same question as item {item.pk}")
        transaction.on_commit(learning_values_recompute_soon)  # it needs a value of its own
    return ReviewItem.objects.get(pk=item.pk)


def _covering_answers(item: ReviewItem, answer: ApprovedAnswer) -> dict[int, ApprovedAnswer]:
    """The approved answer under each question grouped under the item (by member id): the trainer saw
    them on the item's page, and each phrasing served widens what the approval answers."""
    members = ReviewItem.objects.filter(representative=item, status=Status.GROUPED).select_related("message__reply_to")
    asked = {_normalised(answer.question)}
    covering: dict[int, ApprovedAnswer] = {}
    for member in members:
        question = _question_as_searched(member.message.reply_to)
        if question and _normalised(question) not in asked:
            asked.add(_normalised(question))
            # source_message: the answer it was approved from (the export renumbers citations by it)
            covering[member.pk] = ApprovedAnswer(
                question=question, answer=answer.answer, original_answer=answer.original_answer,
                sources=answer.sources, chunk_ids=answer.chunk_ids, language=answer.language,
                source_message=item.message, review_item=member, created_by=answer.created_by,
            )
    return covering


def _cover_members(item: ReviewItem, covering: dict[int, ApprovedAnswer], reviewer: User, now: datetime,
                   status: str, answer_text: str) -> None:
    """Each question grouped under the item takes its decision; one regrouped meanwhile is left alone."""
    members = ReviewItem.objects.select_for_update().filter(representative=item, status=Status.GROUPED).order_by("pk")
    # one answer per question: a member approved before (then reopened by a complaint) gives way
    ApprovedAnswer.objects.filter(review_item__in=members, is_active=True).update(is_active=False)
    for member in members:
        before = _snapshot(member)
        member.status, member.decided_by, member.decided_at = status, reviewer, now
        member.save(update_fields=["status", "decided_by", "decided_at"])
        ReviewDecision.objects.create(item=member, action=Action.COVER, user=reviewer, at=now, before=before,
                                      after=_snapshot(member), note=f"covered by the decision on item {item.pk}")
        answer_approved.send(sender=ReviewItem, message_id=member.message_id, text=answer_text)
        if member.pk in covering:
            covering[member.pk].save()


def _normalised(question: str) -> str:
    return " ".join(question.casefold().split())


class _Question(Protocol):
    """A visitor's question as chat stores it (review does not import chat)."""

    text: str
    standalone_query: str


def _question_as_searched(question: _Question | None) -> str:
    """A follow-up's standalone form when it had one (empty when the question stood alone)."""
    if question is None:
        return ""
    return (question.standalone_query or question.text).strip()


def _approved_answer(item: ReviewItem, reviewer: User, text: str | None) -> ApprovedAnswer:
    message = item.message
    if message.refused:
        raise ReviewConflict("refused", "This answer is the safety policy's refusal, not an answer to the "
                                        "question: it cannot be approved or edited. Reject it or skip it.")
    question = _question_as_searched(message.reply_to)
    if not question:
        raise ReviewConflict("no_question", "This answer has no question to approve it for.")
    if text is not None and not text.strip():
        raise ReviewConflict("empty_answer", "An approved answer cannot be empty.")
    edited = text is not None and text.strip() != message.text.strip()
    return ApprovedAnswer(
        question=question, answer=text.strip() if text is not None and edited else message.text,
        original_answer=message.text if edited else "", sources=message.sources,
        chunk_ids=[int(s["chunk_id"]) for s in message.sources if isinstance(s, dict) and s.get("chunk_id")],
        language=message.conversation.language or settings.CHAT_DEFAULT_LANGUAGE,
        source_message=message, review_item=item, created_by=reviewer,
    )


def _diff(original: str, edited: str) -> str:
    lines = difflib.unified_diff(original.splitlines(), edited.splitlines(), "answer", "edited", lineterm="")
    return "\n".join(lines)


def _transition(item: ReviewItem, user: User, now: datetime, move: _Move) -> ReviewItem:
    """The guarded update and its audit row, in one transaction. The row is locked first so that a
    refusal names the state that caused it, and `before` is the state the update changed."""
    with transaction.atomic():
        current = ReviewItem.objects.select_for_update(of=("self",)).get(pk=item.pk)
        if not ReviewItem.objects.filter(move.allowed, pk=item.pk).update(**move.changes):
            raise _conflict(current, user, now)
        updated = ReviewItem.objects.get(pk=item.pk)
        ReviewDecision.objects.create(
            item=updated, action=move.action, user=user, at=now, diff=move.diff, note=move.note,
            before={**_snapshot(current), **move.before}, after={**_snapshot(updated), **move.after},
        )
    return updated


def _conflict(item: ReviewItem, user: User, now: datetime) -> ReviewConflict:
    if item.status == Status.GROUPED:
        return ReviewConflict("grouped", f"This question is grouped under item {item.representative_id}: "
                                         "deciding that one decides this one.")
    if item.status in ReviewItem.DECIDED:
        return ReviewConflict("already_decided", f"This answer was already {item.get_status_display().lower()}.")
    live = item.status == Status.CLAIMED and item.claimed_at is not None and item.claimed_at >= claim_cutoff(now)
    if live and item.claimed_by_id != user.pk:
        holder = item.claimed_by.get_username() if item.claimed_by else "another trainer"
        return ReviewConflict("claimed_by_other", f"{holder} is reviewing this answer.")
    if item.status == Status.CLAIMED and item.claimed_by_id == user.pk:
        minutes = settings.REVIEW_CLAIM_MINUTES
        return ReviewConflict("claim_lapsed", f"Your claim lapsed after {minutes} minutes: claim it again.")
    return ReviewConflict("not_claimed", "Claim this answer first.")


def _live_claim(user: User, now: datetime) -> Q:
    return Q(status=Status.CLAIMED, claimed_by=user, claimed_at__gte=claim_cutoff(now))


def _snapshot(item: ReviewItem) -> dict[str, Any]:
    return {"status": item.status, "claimed_by": item.claimed_by_id, "learning_value": item.learning_value}


# --- approved answers -------------------------------------------------------------------------------


def approved_answers_embed(*, answers: list[ApprovedAnswer] | None = None) -> int:
    """Embed questions in the active space: new ones, edited ones, all of them after a model switch."""
    if answers is None:
        answers = _answers_outside_active_space()
    if not answers:
        return 0
    _embed_questions(answers)
    ApprovedAnswer.objects.bulk_update(answers, ["embedding", "space_id"])
    return len(answers)


def _answers_outside_active_space() -> list[ApprovedAnswer]:
    try:
        ref = active_space_ref()
    except NoActiveSpace:
        return list(ApprovedAnswer.objects.all())
    # exclude() keeps rows whose space is NULL: never embedded
    return list(ApprovedAnswer.objects.exclude(space_id=ref.space_id, embedding__isnull=False))


def _embed_questions(answers: list[ApprovedAnswer]) -> None:
    """Sets each answer's vector and space without saving: the embedder runs before the write, never
    inside its transaction."""
    ref = _active_space()
    vectors = embed_texts([a.question for a in answers], ref.spec)
    for answer, vector in zip(answers, vectors, strict=True):
        answer.embedding, answer.space_id = vector, ref.space_id


def _active_space() -> SpaceRef:
    """Approved answers are served before retrieval, so one saved before the first ingest creates the
    space (as that ingest would) rather than waiting for it."""
    try:
        return active_space_ref()
    except NoActiveSpace:
        embedding_space_ensure()
        return active_space_ref()


def approved_answer_save(*, answer: ApprovedAnswer) -> ApprovedAnswer:
    """Create or edit; the question is (re-)embedded first, so it is served from the next question."""
    _embed_questions([answer])
    answer.save()
    return answer


def approved_answer_hit(*, answer_id: int) -> None:
    ApprovedAnswer.objects.filter(pk=answer_id).update(hit_count=F("hit_count") + 1, last_hit_at=timezone.now())


class CsvImportError(ValueError):
    """The file does not hold approved answers; nothing was imported."""


def approved_answers_import_csv(*, data: bytes, user: User | None = None) -> int:
    """Rows `question,answer[,language,scope,expires_at]` (header required); all or nothing."""
    try:
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CsvImportError(f"not a UTF-8 CSV file: {exc}") from exc
    if not rows or not {"question", "answer"} <= set(rows[0]):
        raise CsvImportError("the CSV needs a header with at least the columns question and answer")
    answers = [_answer_from_row(row, line, user) for line, row in enumerate(rows, start=2)]
    _embed_questions(answers)  # before the write: nothing is stored if embedding fails
    ApprovedAnswer.objects.bulk_create(answers)  # one INSERT: all rows or none
    return len(answers)


def _answer_from_row(row: dict[str, str | None], line: int, user: User | None) -> ApprovedAnswer:
    question, text = (row.get("question") or "").strip(), (row.get("answer") or "").strip()
    if not question or not text:
        raise CsvImportError(f"line {line}: question and answer must not be empty")
    return ApprovedAnswer(
        question=question, answer=text, language=(row.get("language") or "").strip() or "en",
        scope=(row.get("scope") or "").strip(), expires_at=_expiry(row.get("expires_at"), line), created_by=user,
    )


def _expiry(value: str | None, line: int) -> datetime | None:
    if not value or not value.strip():
        return None
    parsed = parse_datetime(value.strip()) or parse_datetime(value.strip() + "T00:00:00")
    if parsed is None:
        raise CsvImportError(f"line {line}: expires_at {value!r} is not a date (YYYY-MM-DD)")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)
