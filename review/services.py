from __future__ import annotations

import csv
import io
from datetime import datetime
from uuid import UUID

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from knowledge.embeddings import NoActiveSpace, SpaceRef, active_space_ref, embed_texts
from knowledge.services import embedding_space_ensure

from .models import ApprovedAnswer, ReviewItem
from .signals import answer_rejected


def review_item_enqueue(*, message_id: UUID, priority: float, reason: str) -> ReviewItem:
    """Queue an answer for review, or raise its priority if it is already queued."""
    item, created = ReviewItem.objects.get_or_create(
        message_id=message_id, defaults={"priority": priority, "reason": reason}
    )
    if not created:
        ReviewItem.objects.filter(pk=item.pk).update(priority=Greatest("priority", priority))
        item.refresh_from_db()
    return item


@transaction.atomic
def review_item_reject(*, item: ReviewItem, user: User) -> None:
    """A trainer rejects the answer: it is never served again from the cache."""
    ReviewItem.objects.filter(pk=item.pk).update(
        status=ReviewItem.Status.REJECTED, reviewed_by=user, reviewed_at=timezone.now()
    )
    answer_rejected.send(sender=ReviewItem, message_id=item.message_id)


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
