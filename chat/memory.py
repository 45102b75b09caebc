"""What the assistant remembers beyond the last few turns: the visitor's profile and a running
summary of older turns.

The profile holds what a visitor stated about themselves: facts, each under a label, picked from
their messages or edited by the visitor; it goes into the context of their own answers only.
Which labels exist, how they are titled and which sentences they pick is the deployment's
configuration (CHAT_PROFILE_CONFIG, a TOML file such as demo/profile.toml), so a new domain needs
no code. The summary folds turns older than the verbatim window: extractively here (offline,
instant), by the LLM in a Celery task when one is configured (chat/tasks.py).
"""

from __future__ import annotations

import functools
import hashlib
import re
import tomllib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from knowledge.tokens import count_tokens

from .models import Conversation, Message, VisitorFact, VisitorProfile
from .safety.pii import pii_mask, pii_mask_structured, text_clean

# --- profile configuration ---------------------------------------------------------------------------

NOTE = "note"  # the label of a self-statement no configured pattern claims
_LABEL = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class ProfileField:
    label: str
    title: str
    many: bool = False  # a label holds one value (a newer one replaces it) unless it may hold many


@dataclass(frozen=True)
class ProfileConfig:
    fields: tuple[ProfileField, ...] = ()  # what the visitor sees and edits, in this order
    statements: tuple[tuple[str, re.Pattern[str]], ...] = ()  # (label, pattern), the first match wins
    notes_title: str = "Note"  # empty: self-statements no pattern claims are not remembered

    def field(self, label: str) -> ProfileField | None:
        if label == NOTE and self.notes_title:
            return ProfileField(NOTE, self.notes_title, many=True)
        return next((f for f in self.fields if f.label == label), None)


def profile_config() -> ProfileConfig:
    return _config_load(settings.CHAT_PROFILE_CONFIG)


@functools.lru_cache(maxsize=4)
def _config_load(path: str) -> ProfileConfig:
    if not path:
        return ProfileConfig()
    try:
        return _config_parse(tomllib.loads(Path(path).read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, re.error) as error:
        raise ImproperlyConfigured(f"CHAT_PROFILE_CONFIG {path}: {error!r}") from error


def _config_parse(raw: dict) -> ProfileConfig:
    notes = raw.get("notes", {})
    config = ProfileConfig(
        fields=tuple(ProfileField(f["label"], f["title"], bool(f.get("many", False))) for f in raw.get("fields", [])),
        statements=tuple((s["label"], re.compile(s["pattern"], re.IGNORECASE)) for s in raw.get("statements", [])),
        notes_title=str(notes.get("title", "Note")) if notes.get("keep", True) else "",
    )
    labels = [f.label for f in config.fields]
    if len(set(labels)) < len(labels) or NOTE in labels or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"field labels must be distinct, lowercase words other than {NOTE!r}: {labels}")
    unknown = [label for label, _ in config.statements if config.field(label) is None]
    if unknown:
        raise ValueError(f"statements under labels that are no field (nor {NOTE!r} with notes kept): {unknown}")
    return config


# --- profile -----------------------------------------------------------------------------------------

_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
_FIRST_PERSON = re.compile(r"\b(?:i|im|my|me|mine)\b", re.IGNORECASE)
# A question typed without its question mark ("how do I do a barbell squat") states nothing.
_QUESTION_START = re.compile(
    r"^\s*(?:how|what|why|when|where|which|who|whom|whose|can|could|should|would|will|shall|may|might|"
    r"is|are|am|was|were|do|does|did|have|has|any|tips?)\b",
    re.IGNORECASE,
)
# A sentence that opens with the visitor saying something about themselves, in any domain.
_SELF_STATEMENT = re.compile(
    r"^\s*(?:(?:also|and|but|so|well|btw|by the way|actually),?\s+)?"
    r"(?:i am|i'm|im|i have|i've|i had|i can't|i cannot|i can|i don't|i do not|i want|i'd like|i would like|"
    r"i need|i usually|i only|i prefer|i use|i own|i live|i work|i recently|i just|my)\b",
    re.IGNORECASE,
)


class ProfileError(ValueError):
    """A profile change that cannot apply, such as a fact id the visitor does not have."""

    def __init__(self, message: str, *, field: str = "facts") -> None:
        super().__init__(message)
        self.field = field  # the request's key it is about


# A profile is read by the model on every answer, so what goes in is checked here whoever calls:
# single-line printable text, capped, PII masked, under a configured label.
_LANGUAGE = re.compile(r"^(?:[a-z]{2,3}(?:-[A-Za-z0-9]{2,8}){0,2})?$")


def profile_get(*, visitor_id: str) -> VisitorProfile | None:
    return VisitorProfile.objects.filter(visitor_id=visitor_id).prefetch_related("facts").first()


def profile_text(profile: VisitorProfile | None) -> str:
    """The profile as the model reads it; empty when there is nothing to say."""
    if profile is None or profile.is_empty():
        return ""
    config = profile_config()
    order = {field.label: n for n, field in enumerate(config.fields)}
    lines = [f"Preferred language: {profile.language}"] if profile.language else []
    for fact in sorted(profile.facts.all(), key=lambda f: (order.get(f.label, len(order)), f.created_at, f.pk)):
        field = config.field(fact.label)
        title = field.title if field else fact.label  # a label the configuration has since dropped
        lines.append(f"- {fact.value}" if fact.label == NOTE else f"{title}: {fact.value}")
    return "\n".join(lines)


def profile_hash(profile: VisitorProfile | None) -> str:
    text = profile_text(profile)
    return hashlib.sha256(text.encode()).hexdigest()[:32] if text else ""


def facts_extract(text: str, config: ProfileConfig | None = None) -> list[tuple[str, str]]:
    """(label, sentence) for each statement a visitor makes about themselves, questions left out."""
    config = config or profile_config()
    found = []
    for sentence in _SENTENCE.findall(text):
        sentence = sentence.strip()
        if sentence.endswith("?") or _QUESTION_START.match(sentence) or len(sentence.split()) < 3:
            continue
        if not _FIRST_PERSON.search(sentence):
            continue
        label = next((label for label, pattern in config.statements if pattern.search(sentence)), "")
        if not label and config.notes_title and _SELF_STATEMENT.match(sentence):
            label = NOTE
        if label:
            found.append((label, sentence))
    return found


def fact_value_clean(value: str) -> str:
    """A fact as stored: one printable line, PII masked, at most CHAT_PROFILE_FACT_MAX_CHARS (a statement
    picked from a message is cut there; one the visitor typed is refused before, see _fact_value)."""
    return pii_mask(text_clean(value)).text[: settings.CHAT_PROFILE_FACT_MAX_CHARS].strip()


def profile_remember(*, visitor_id: str, text: str, message_id: uuid.UUID | None = None) -> VisitorProfile | None:
    """Add the facts stated in a message (saved already) to the visitor's profile, newest kept."""
    found = facts_extract(text)
    if not found:
        return profile_get(visitor_id=visitor_id)
    with transaction.atomic():
        profile = _profile_locked(visitor_id)
        for label, value in found:
            if value := fact_value_clean(value):
                _fact_put(profile=profile, label=label, value=value, message_id=message_id)
        _facts_trim(profile)
        profile.save(update_fields=["updated_at"])
    return _with_facts(profile)


def profile_update(*, visitor_id: str, data: dict, replace: bool = False) -> VisitorProfile:
    """Apply what the visitor edited: `language`, and `facts` items {"id", "value"} (an empty value
    forgets that fact) or {"label", "value"} (a new fact; empty: a one-value label is forgotten).
    With replace, what is left out is forgotten."""
    items = [_item_checked(item) for item in data.get("facts", [])]  # before the lock: masking takes a while
    if len(items) > settings.CHAT_PROFILE_MAX_FACTS:
        raise ProfileError(f"At most {settings.CHAT_PROFILE_MAX_FACTS} facts at a time.")
    language = data.get("language")
    if language is not None and not _LANGUAGE.match(language):
        raise ProfileError("A language is a code such as en, de or pt-BR.", field="language")
    with transaction.atomic():
        profile = _profile_locked(visitor_id)
        if replace:
            profile.facts.exclude(pk__in=[item["id"] for item in items if "id" in item]).delete()
        profile.language = language if language is not None else ("" if replace else profile.language)
        for item in items:
            _fact_edit(profile=profile, item=item)
        _facts_trim(profile)
        profile.save()
    return _with_facts(profile)


def _item_checked(item: dict) -> dict:
    """A fact change from the visitor, its label a configured one and its value clean, capped and masked."""
    label = item.get("label")
    if label is not None and (not isinstance(label, str) or profile_config().field(label) is None):
        known = ", ".join(f.label for f in profile_config().fields)
        raise ProfileError(f"Unknown label {str(label)[:64]!r}; this profile knows: {known}.")
    value = item.get("value", "")
    if not isinstance(value, str):
        raise ProfileError("A fact's value is text.")
    value = text_clean(value)
    if len(value) > settings.CHAT_PROFILE_FACT_MAX_CHARS:
        raise ProfileError(f"A fact is at most {settings.CHAT_PROFILE_FACT_MAX_CHARS} characters.")
    return {**item, "value": pii_mask(value).text}


def profile_delete(*, visitor_id: str) -> bool:
    return VisitorProfile.objects.filter(visitor_id=visitor_id).delete()[0] > 0


def _profile_locked(visitor_id: str) -> VisitorProfile:
    profile, _ = VisitorProfile.objects.select_for_update().get_or_create(visitor_id=visitor_id)
    return profile


def _with_facts(profile: VisitorProfile) -> VisitorProfile:
    """The profile as saved, its facts loaded once for all who read them next."""
    return VisitorProfile.objects.prefetch_related("facts").get(pk=profile.pk)


def _many(label: str) -> bool:
    field = profile_config().field(label)
    return bool(field and field.many)


def _fact_put(*, profile: VisitorProfile, label: str, value: str, message_id: uuid.UUID | None) -> None:
    """One value per label unless the label may hold many; a value stated again is kept as it was."""
    if not _many(label):
        profile.facts.filter(label=label).exclude(value__iexact=value).delete()
    fact, created = VisitorFact.objects.get_or_create(
        profile=profile, label=label, value__iexact=value, defaults={"value": value, "message_id": message_id},
    )
    if not created:
        fact.save(update_fields=["updated_at"])  # restated: recent again, so trimming keeps it


def _fact_edit(*, profile: VisitorProfile, item: dict) -> None:
    if "id" in item:
        _fact_change(profile=profile, fact_id=item["id"], value=item["value"])
    elif item["value"]:
        _fact_put(profile=profile, label=item["label"], value=item["value"], message_id=None)
    elif not _many(item["label"]):  # an emptied one-value label: forget what it held
        profile.facts.filter(label=item["label"]).delete()


def _fact_change(*, profile: VisitorProfile, fact_id: int, value: str) -> None:
    fact = profile.facts.filter(pk=fact_id).first()
    if fact is None:
        raise ProfileError(f"No fact {fact_id} in this profile.")
    if not value or profile.facts.filter(label=fact.label, value__iexact=value).exclude(pk=fact.pk).exists():
        fact.delete()  # forgotten, or now the same as another fact
    elif value != fact.value:
        fact.value, fact.message = value, None  # the visitor's words now, not the message's
        fact.save(update_fields=["value", "message", "updated_at"])


def _facts_trim(profile: VisitorProfile) -> None:
    keep = profile.facts.order_by("-updated_at", "-pk").values_list("pk", flat=True)[: settings.CHAT_PROFILE_MAX_FACTS]
    profile.facts.exclude(pk__in=list(keep)).delete()


# --- summary -----------------------------------------------------------------------------------------


def _gist(message: Message, words: int = 30) -> str:
    """What a turn was about: a visitor's words (questions are short), an answer's first sentence."""
    text = message.text.strip()
    if message.role != Message.Role.USER:
        text = (_SENTENCE.findall(text) or [""])[0].strip()
    cut = pii_mask_structured(text).text.split()  # turns are stored masked; this is for rows stored before
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
