import uuid
from datetime import timedelta

from celery import shared_task
from django.conf import settings

from knowledge.selectors import embedding_space_active, kb_version

from . import privacy, services, summaries
from .reuse import services as reuse


@shared_task(ignore_result=True)
def fail_stale_streaming_answers() -> int:
    return services.stale_streaming_fail(older_than=timedelta(seconds=settings.CHAT_STALE_STREAM_SECONDS))


@shared_task(ignore_result=True)
def conversation_summarize(conversation_id: str, before_sequence: int) -> bool:
    """Fold the turns that left the verbatim window into the stored summary."""
    return summaries.conversation_fold(conversation_id=conversation_id, before_sequence=before_sequence)


@shared_task(ignore_result=True)
def answer_cache_evict() -> dict[str, int]:
    space = embedding_space_active()
    active = space.pk if space else None
    counts = reuse.evict(current_kb_version=kb_version(), active_space_id=active)
    reuse.flush_scope_indexes(active)
    return counts


@shared_task(ignore_result=True)
def held_answers_release_due() -> int:
    """Held answers no trainer decided in REVIEW_HOLD_SECONDS go out as they were."""
    return services.held_answers_release_due()


@shared_task(ignore_result=True)
def shadow_answer(arm_id: int, answer_id: str, chunk_ids: list[int], dense_scores: list[float]) -> bool:
    """A shadow arm answers a stored live answer's question again, for comparison only (chat/shadow.py)."""
    from .shadow import shadow_answer_run  # chat.shadow enqueues this task

    return shadow_answer_run(arm_id=arm_id, answer_id=uuid.UUID(answer_id), chunk_ids=chunk_ids,
                             dense_scores=dense_scores) is not None


@shared_task(ignore_result=True)
def answer_cache_blocked_evict() -> int:
    """Beat job: blocked answers are deleted CACHE_BLOCKED_KEEP_DAYS after their block."""
    return reuse.blocked_evict(older_than=timedelta(days=settings.CACHE_BLOCKED_KEEP_DAYS))


@shared_task(ignore_result=True)
def conversations_retention() -> dict[str, int]:
    """Beat job: conversations idle for more than RETENTION_DAYS are deleted with all that hangs on them."""
    record = privacy.retention_run(days=settings.RETENTION_DAYS)
    return record.counts if record else {}
