"""What the assistant remembers beyond the last few turns: the visitor's profile and a running
summary of older turns.

The profile holds what a visitor stated about themselves (explicit fields they edit, and facts
picked from their messages); it goes into the context of their own answers only. The summary
folds turns older than the verbatim window: extractively here (offline, instant), by the LLM in a
Celery task when one is configured (chat/tasks.py).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction

from knowledge.tokens import count_tokens

from .models import Conversation, Message, VisitorProfile

# --- profile -----------------------------------------------------------------------------------------

_LABELS = {"goal": "Goal", "level": "Level", "equipment": "Equipment", "limits": "Injuries or limits",
           "language": "Preferred language"}
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
# A sentence in which the visitor says something about themselves, not a question.
_SELF_STATEMENT = re.compile(
    r"^\s*(?:(?:also|and|but|so|well|btw|by the way|actually),?\s+)?"
    r"(?:i am|i'm|im|i have|i've|i had|i can't|i cannot|i can|i don't|i do not|i want|i'd like|i would like|"
    r"i need|i train|i usually|i weigh|i only|i prefer|i use|i own|i live|i work|i run|i hurt|i injured|"
    r"i recently|i just|my)\b",
    re.IGNORECASE,
)


def profile_get(*, visitor_id: str) -> VisitorProfile | None:
    return VisitorProfile.objects.filter(visitor_id=visitor_id).first()


def profile_text(profile: VisitorProfile | None) -> str:
    """The profile as the model reads it; empty when there is nothing to say."""
    if profile is None or profile.is_empty():
        return ""
    lines = [f"{_LABELS[f]}: {getattr(profile, f)}" for f in VisitorProfile.FIELDS if getattr(profile, f)]
    lines += [f"- {fact}" for fact in profile.facts]
    return "\n".join(lines)


def profile_hash(profile: VisitorProfile | None) -> str:
    text = profile_text(profile)
    return hashlib.sha256(text.encode()).hexdigest()[:32] if text else ""


def facts_extract(text: str) -> list[str]:
    """Statements a visitor makes about themselves ("I have a bad knee."), questions left out."""
    facts = []
    for sentence in _SENTENCE.findall(text):
        sentence = sentence.strip()
        if sentence.endswith("?") or not _SELF_STATEMENT.match(sentence) or len(sentence.split()) < 3:
            continue
        facts.append(sentence[:300])
    return facts


def profile_remember(*, visitor_id: str, text: str) -> VisitorProfile | None:
    """Add the facts stated in a message to the visitor's profile (newest kept, no repeats)."""
    new = facts_extract(text)
    profile = profile_get(visitor_id=visitor_id)
    if not new:
        return profile
    with transaction.atomic():
        profile, _ = VisitorProfile.objects.select_for_update().get_or_create(visitor_id=visitor_id)
        known = {fact.casefold() for fact in profile.facts}
        facts = profile.facts + [f for f in new if f.casefold() not in known]
        profile.facts = facts[-settings.CHAT_PROFILE_MAX_FACTS:]
        profile.save(update_fields=["facts", "updated_at"])
    return profile


def profile_update(*, visitor_id: str, data: dict) -> VisitorProfile:
    profile, _ = VisitorProfile.objects.get_or_create(visitor_id=visitor_id)
    for field, value in data.items():
        setattr(profile, field, value)
    profile.save()
    return profile


def profile_delete(*, visitor_id: str) -> bool:
    return VisitorProfile.objects.filter(visitor_id=visitor_id).delete()[0] > 0


# --- summary -----------------------------------------------------------------------------------------


def _gist(message: Message, words: int = 30) -> str:
    """What a turn was about: a visitor's words (questions are short), an answer's first sentence."""
    text = message.text.strip()
    if message.role != Message.Role.USER:
        text = (_SENTENCE.findall(text) or [""])[0].strip()
    cut = text.split()
    return " ".join(cut[:words]) + ("…" if len(cut) > words else "")


def fold_extractive(summary: str, turns: Sequence[Message]) -> str:
    """Append one line per folded message and keep the newest lines within CHAT_SUMMARY_TOKENS."""
    lines = [line for line in summary.splitlines() if line.strip()]
    for message in turns:
        who = "Visitor" if message.role == Message.Role.USER else "Assistant"
        gist = _gist(message)
        if gist:
            lines.append(f"{who}: {gist}")
    return summary_trim("\n".join(lines))


def summary_trim(summary: str) -> str:
    lines = summary.splitlines()
    while len(lines) > 1 and count_tokens("\n".join(lines)) > settings.CHAT_SUMMARY_TOKENS:
        lines.pop(0)
    return "\n".join(lines)


def summary_store(*, conversation_id, summary: str, through: int) -> bool:
    """Save a fold unless a newer one got there first."""
    return Conversation.objects.filter(pk=conversation_id, summary_through__lt=through).update(
        summary=summary, summary_through=through
    ) == 1


def messages_to_fold(conversation: Conversation, before_sequence: int) -> list[Message]:
    """Complete turns after the summary and before the verbatim window."""
    recent = Message.objects.filter(
        conversation=conversation, sequence__lt=before_sequence, status=Message.Status.COMPLETE,
        role__in=[Message.Role.USER, Message.Role.ASSISTANT],
    ).order_by("-sequence").values_list("sequence", flat=True)[: settings.CHAT_HISTORY_TURNS]
    window_start = min(recent, default=before_sequence)
    return list(Message.objects.filter(
        conversation=conversation, sequence__gt=conversation.summary_through, sequence__lt=window_start,
        status=Message.Status.COMPLETE, role__in=[Message.Role.USER, Message.Role.ASSISTANT],
    ).order_by("sequence"))
