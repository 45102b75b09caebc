from __future__ import annotations

import csv
import io
from datetime import datetime
from uuid import UUID

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from knowledge.embeddings import active_space_ref, embed_texts

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
def review_item_reject(*, item: ReviewItem, user) -> None:
    """A trainer rejects the answer: it is never served again from the cache."""
    ReviewItem.objects.filter(pk=item.pk).update(
        status=ReviewItem.Status.REJECTED, reviewed_by=user, reviewed_at=timezone.now()
    )
    answer_rejected.send(sender=ReviewItem, message_id=item.message_id)


# --- approved answers -------------------------------------------------------------------------------


def approved_answers_embed(*, answers: list[ApprovedAnswer] | None = None) -> int:
    """Embed questions in the active space: new ones, edited ones, all of them after a model switch."""
    ref = active_space_ref()
    if answers is None:
        # exclude() keeps rows whose space is NULL: never embedded
        answers = list(ApprovedAnswer.objects.exclude(space_id=ref.space_id, embedding__isnull=False))
    if not answers:
        return 0
    vectors = embed_texts([a.question for a in answers], ref.spec)
    for answer, vector in zip(answers, vectors, strict=True):
        answer.embedding, answer.space_id = vector, ref.space_id
    ApprovedAnswer.objects.bulk_update(answers, ["embedding", "space_id"])
    return len(answers)


def approved_answer_save(*, answer: ApprovedAnswer) -> ApprovedAnswer:
    """Create or edit; the question is (re-)embedded at once so it is served from the next question."""
    answer.save()
    approved_answers_embed(answers=[answer])
    return answer


def approved_answer_hit(*, answer_id: int) -> None:
    ApprovedAnswer.objects.filter(pk=answer_id).update(hit_count=F("hit_count") + 1, last_hit_at=timezone.now())


class CsvImportError(ValueError):
    """The file does not hold approved answers; nothing was imported."""


def approved_answers_import_csv(*, data: bytes, user=None) -> int:
    """Rows `question,answer[,language,scope,expires_at]` (header required); all or nothing."""
    try:
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CsvImportError(f"not a UTF-8 CSV file: {exc}") from exc
    if not rows or not {"question", "answer"} <= set(rows[0]):
        raise CsvImportError("the CSV needs a header with at least the columns question and answer")
    answers = []
    for number, row in enumerate(rows, start=2):
        question, text = (row.get("question") or "").strip(), (row.get("answer") or "").strip()
        if not question or not text:
            raise CsvImportError(f"line {number}: question and answer must not be empty")
        answers.append(ApprovedAnswer(
            question=question, answer=text, language=(row.get("language") or "en").strip() or "en",
            scope=(row.get("scope") or "").strip(), expires_at=_expiry(row.get("expires_at"), number),
            created_by=user,
        ))
    with transaction.atomic():
        ApprovedAnswer.objects.bulk_create(answers)
        approved_answers_embed(answers=answers)
    return len(answers)


def _expiry(value: str | None, line: int) -> datetime | None:
    if not value or not value.strip():
        return None
    parsed = parse_datetime(value.strip()) or parse_datetime(value.strip() + "T00:00:00")
    if parsed is None:
        raise CsvImportError(f"line {line}: expires_at {value!r} is not a date (YYYY-MM-DD)")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)
