"""Step 1 of the pipeline: size limits, PII masking, a prompt-injection signal.

PII is replaced by typed placeholders in what is stored and in what is sent to the LLM
(chat/safety/pii.py: Presidio, checksum recognisers, spaCy NER for names and places); the raw text
leaves this function only encrypted (`original_sealed`, for staff with the chat.view_pii permission).

`guard` does it all. The NER pass costs a few milliseconds, so a caller may split it: `guard_fast`
(limits, patterns, injection; no model) first, then `guard_names` beside the query embedding.
"""

import re
from dataclasses import dataclass, replace

from django.conf import settings

from .errors import CodedError
from .safety.pii import pii_mask, pii_mask_structured, pii_seal


class GuardError(CodedError):
    """The message cannot be taken as it is (empty, too long)."""


@dataclass(frozen=True)
class GuardedText:
    text: str
    pii_found: tuple[str, ...]
    injection_suspected: bool
    original_sealed: str = ""  # the visitor's words as typed, encrypted; empty when nothing was masked


_INJECTION = re.compile(
    r"ignore (?:all |any )?(?:the )?(?:previous|prior|above) (?:instructions|prompts?)"
    r"|disregard (?:all |your )?(?:previous |prior )?instructions"
    r"|you are now (?:dan|in developer mode)|\bjailbreak\b|do anything now|system prompt",
    re.IGNORECASE,
)


def validate_text(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise GuardError("empty_text", "The message is empty.")
    if len(text) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise GuardError(
            "text_too_long", f"The message is longer than {settings.CHAT_MAX_MESSAGE_CHARS} characters."
        )
    return text.strip()


def guard(text: object) -> GuardedText:
    return guard_names(guard_fast(text))


def guard_fast(text: object) -> GuardedText:
    """Limits, the injection signal and the pattern recognisers: no model, a fraction of a millisecond."""
    clean = validate_text(text)
    masked = pii_mask_structured(clean)
    return GuardedText(masked.text, masked.found, bool(_INJECTION.search(clean)), pii_seal(clean))


def guard_names(guarded: GuardedText) -> GuardedText:
    """The NER pass (names, places) over what guard_fast left; the sealed original kept only if anything
    was masked."""
    masked = pii_mask(guarded.text)
    found = guarded.pii_found + masked.found
    return replace(guarded, text=masked.text, pii_found=found, original_sealed=guarded.original_sealed if found else "")
