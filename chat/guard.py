"""Step 1 of the pipeline: size limits, PII scrubbing, a prompt-injection signal.

PII is replaced by typed placeholders in what is stored and in what is sent to the LLM; the
raw text never leaves this function. Patterns are for structured identifiers (emails, phone
numbers, cards that pass the Luhn check, IBANs, US SSNs, IP addresses); names and addresses
need an NER model and are out of scope here.
"""

import re
from dataclasses import dataclass

from django.conf import settings

from .errors import CodedError


class GuardError(CodedError):
    """The message cannot be taken as it is (empty, too long)."""


@dataclass(frozen=True)
class GuardedText:
    text: str
    pii_found: tuple[str, ...]
    injection_suspected: bool


# Every repetition is bounded (the local part at most 64 characters, as RFC 5321 allows, a domain at
# most 9 labels of 63): no pattern can backtrack beyond a fixed distance, so scrubbing takes time in
# proportion to the text and may run on the event loop (tests/security/test_sockets.py checks it).
_EMAIL = re.compile(r"\b[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}\b")
_CARD = re.compile(r"\b(?:\d[ -]?){13,19}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?)?\d{3}[ .-]?\d{3,4}(?:[ .-]?\d{2,4})?\b")
_INJECTION = re.compile(
    r"ignore (?:all |any )?(?:the )?(?:previous|prior|above) (?:instructions|prompts?)"
    r"|disregard (?:all |your )?(?:previous |prior )?instructions"
    r"|you are now (?:dan|in developer mode)|\bjailbreak\b|do anything now|system prompt",
    re.IGNORECASE,
)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _scrub_cards(text: str, found: list[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and _luhn_ok(digits):
            found.append("CREDIT_CARD")
            return "[CREDIT_CARD]"
        return match.group()

    return _CARD.sub(replace, text)


def scrub_pii(text: str) -> tuple[str, list[str]]:
    found: list[str] = []
    text = _scrub_cards(text, found)  # before phones: a card number also looks like digits
    for label, pattern in (("EMAIL", _EMAIL), ("IBAN", _IBAN), ("SSN", _SSN), ("IP_ADDRESS", _IPV4), ("PHONE", _PHONE)):
        if label == "EMAIL" and "@" not in text:
            continue  # the costliest pattern, and most messages hold no address
        text, count = pattern.subn(f"[{label}]", text)
        found.extend([label] * count)
    return text, found


def validate_text(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise GuardError("empty_text", "The message is empty.")
    if len(text) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise GuardError(
            "text_too_long", f"The message is longer than {settings.CHAT_MAX_MESSAGE_CHARS} characters."
        )
    return text.strip()


def guard(text: object) -> GuardedText:
    clean = validate_text(text)
    scrubbed, found = scrub_pii(clean)
    return GuardedText(scrubbed, tuple(found), bool(_INJECTION.search(clean)))
