"""What the safety checks of one turn mean for its answer, under the policy in force (Admin → Safety policy).

A question's checks (the injection detector, moderation) end in one of: a refusal (no LLM, no reuse: a fixed
sentence is the answer, and a trainer sees why), a hold (the answer is generated, then waits for a trainer and
is never sent unreviewed), or flags (the answer goes out as usual and a trainer sees why it was flagged). An
answer's own checks (moderation, a system-prompt leak) add to these once it is written. Pure: the pipeline
runs the checks and acts on the result (chat/pipeline.py, chat/finish.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from review.models import ReviewItem

from ..models_safety import ContentSafetyPolicy
from .injection import InjectionVerdict
from .moderation import ModerationVerdict
from .policy import SafetyPolicy

Reason = ReviewItem.Reason
Injection, Moderation = ContentSafetyPolicy.InjectionAction, ContentSafetyPolicy.ModerationAction

REFUSALS = {
    Reason.INJECTION: "I can't do that: your message looks like an attempt to change how I work. Ask me a "
                      "question and I will answer it from what I know.",
    Reason.MODERATION: "I can't help with that. If you or someone else is in danger, please contact your local "
                       "emergency services.",
}


@dataclass(frozen=True)
class Screening:
    refusal: str = ""  # the answer instead of one: nothing is generated or reused
    hold: tuple[str, ...] = ()  # review reasons that hold the answer for a trainer
    flags: tuple[tuple[str, str], ...] = ()  # (review reason, what a trainer reads) beside an answer sent as usual
    reminder: bool = False  # the system prompt gets the injection reminder
    cacheable: bool = True  # shared with other visitors through the answer cache

    @property
    def reasons(self) -> list[str]:
        return list(dict.fromkeys([*self.hold, *(reason for reason, _ in self.flags)]))

    @property
    def reason_text(self) -> str:
        return "; ".join(text for _, text in self.flags)


def question_screening(
    *, injection: InjectionVerdict, moderation: ModerationVerdict | None, policy: SafetyPolicy
) -> Screening:
    """`moderation`: None while the question's moderation cannot change what is sent
    (`question_moderation_decides`); `question_moderated` adds its verdict before the answer is stored."""
    screening = Screening()
    if injection.suspected:
        screening = _acted(screening, policy.injection, Reason.INJECTION,
                           f"suspected prompt injection (score {injection.score:.2f})")
        if policy.injection == Injection.REMINDER:
            screening = replace(screening, reminder=True)
    return question_moderated(screening, moderation, policy)


def question_moderated(screening: Screening, moderation: ModerationVerdict | None, policy: SafetyPolicy) -> Screening:
    if moderation is not None and moderation.flagged:
        screening = _acted(screening, policy.question_moderation, Reason.MODERATION,
                           f"question flagged by moderation: {moderation.category_text}")
    return screening


def question_moderation_decides(policy: SafetyPolicy) -> bool:
    """Whether the question's moderation can refuse or hold its answer, so that nothing may be sent before
    its verdict; under `flag` it only marks the answer, and is asked after the answer is written."""
    return policy.question_moderation in (Moderation.REFUSE, Moderation.REVIEW)


def answer_screening(
    screening: Screening, *, moderation: ModerationVerdict | None, leaked: bool, policy: SafetyPolicy
) -> Screening:
    """The question's screening with what the written answer's checks add."""
    if leaked:  # what was sent stays sent; a trainer sees it, nobody else is served it
        screening = _flagged(screening, Reason.LEAK, "the answer began to repeat the system prompt: cut there")
    if moderation is not None and moderation.flagged:
        screening = _acted(screening, policy.answer_moderation, Reason.MODERATION,
                           f"answer flagged by moderation: {moderation.category_text}")
    return screening


def answer_held_back(policy: SafetyPolicy) -> bool:
    """Whether answers are moderated before they are sent (refuse or review), not after (flag)."""
    return policy.answer_moderation in (Moderation.REFUSE, Moderation.REVIEW)


def _acted(screening: Screening, action: str, reason: str, text: str) -> Screening:
    screening = _flagged(screening, reason, text)
    if action in (Injection.REFUSE, Moderation.REFUSE):
        return replace(screening, refusal=screening.refusal or REFUSALS[Reason(reason)])
    if action in (Injection.REVIEW, Moderation.REVIEW):
        return replace(screening, hold=(*screening.hold, reason))
    return screening


def _flagged(screening: Screening, reason: str, text: str) -> Screening:
    return replace(screening, flags=(*screening.flags, (reason, text)), cacheable=False)
