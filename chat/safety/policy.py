"""The content-safety policy in force: the operator's (Admin → Safety policy) where set, else the
settings' (SAFETY_*). Cached a few seconds per process so a question costs no query."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from ..db import db_call
from ..models_safety import ContentSafetyPolicy
from ..process_cache import ProcessCache

POLICY_CACHE_SECONDS = 5.0  # an operator's change applies within this in every process


@dataclass
class SafetyPolicy:
    injection: str  # ContentSafetyPolicy.InjectionAction: refuse | reminder | review
    question_moderation: str  # ContentSafetyPolicy.ModerationAction: refuse | review | flag
    answer_moderation: str  # the same, for answers
    injection_threshold: float | None  # None: the trained (or SAFETY_INJECTION_THRESHOLD) one
    moderation_threshold: float | None  # None: the trained (or SAFETY_MODERATION_THRESHOLD) one


def _policy_read() -> SafetyPolicy:
    row = ContentSafetyPolicy.objects.first() or ContentSafetyPolicy()
    return SafetyPolicy(
        injection=row.injection or settings.SAFETY_INJECTION_POLICY,
        question_moderation=row.question_moderation or settings.SAFETY_QUESTION_MODERATION_POLICY,
        answer_moderation=row.answer_moderation or settings.SAFETY_ANSWER_MODERATION_POLICY,
        injection_threshold=row.injection_threshold or settings.SAFETY_INJECTION_THRESHOLD or None,
        moderation_threshold=row.moderation_threshold or settings.SAFETY_MODERATION_THRESHOLD or None,
    )


_policy = ProcessCache(_policy_read, seconds=POLICY_CACHE_SECONDS)


def safety_policy() -> SafetyPolicy:
    return _policy.get()


async def asafety_policy() -> SafetyPolicy:
    """For the event loop: the cached policy without a thread hop, else read on a pipeline database thread
    (which hands its connection back to the pool)."""
    return _policy.fresh() or await db_call(safety_policy)()


def forget_safety_policy() -> None:
    _policy.forget()
