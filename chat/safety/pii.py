"""Personal data masked before it is stored or sent to a model: Presidio's analyzer with the
project's checksum recognisers (Luhn cards, IBAN check digits) and spaCy's small English NER for
names and places.

Every finding becomes a typed placeholder ("[EMAIL]", "[PERSON]"). The NER model comes from an
installed package (settings.PII_SPACY_MODEL), so nothing downloads at run time. One engine per
process, built on first use or by `pii_warm()` at start.

Two speeds: `pii_mask_structured` runs only the pattern recognisers (well under a millisecond),
`pii_mask` adds the NER pass (a few milliseconds on a short question, so the pipeline runs it
beside the query embedding). Where a visitor's own words were masked, `pii_seal` keeps the
original encrypted for staff holding the `chat.view_pii` permission (`pii_unseal`).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import itertools
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import regex  # type: ignore[import-untyped]
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from gender_guesser.detector import Detector  # type: ignore[import-untyped]
from presidio_analyzer import AnalyzerEngine, EntityRecognizer, Pattern, PatternRecognizer, RecognizerRegistry
from presidio_analyzer import RecognizerResult as PresidioResult
from presidio_analyzer.nlp_engine import NlpEngine, NlpEngineProvider, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    SpacyRecognizer,
    UsSsnRecognizer,
)
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig, RecognizerResult
from spacy.lang.en.stop_words import STOP_WORDS

from chat.language import confident_language
from chat.safety.pii_names import NameListRecognizer, NameLists
from chat.safety.places import coarse_place

# Presidio's entity type -> the placeholder stored and shown (the names the guard has always used).
PLACEHOLDERS = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN",
    "US_SSN": "SSN",
    "IP_ADDRESS": "IP_ADDRESS",
    "STREET_ADDRESS": "ADDRESS",
    "PERSON": "PERSON",
    "LOCATION": "LOCATION",
}
NER_ENTITIES = ("PERSON", "LOCATION")
NAMES_LANGUAGE = "en"  # of the NER model (PII_SPACY_MODEL) and of the name lists
_PLACES_AND_NAMES = frozenset({"PERSON", "LOCATION", "STREET_ADDRESS"})  # public when the knowledge says them
STRUCTURED_ENTITIES = tuple(e for e in PLACEHOLDERS if e not in NER_ENTITIES)
# spaCy's labels kept; dates, organisations, nationalities ("Romanian deadlift") are no personal data here.
_SPACY_TO_PRESIDIO = {"PERSON": "PERSON", "PER": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION"}
_SPACY_IGNORED = ["CARDINAL", "DATE", "EVENT", "LANGUAGE", "LAW", "MONEY", "NORP", "ORDINAL", "ORG", "PERCENT",
                  "PRODUCT", "QUANTITY", "TIME", "WORK_OF_ART"]
# Parts of the pipeline that NER does not read: skipping them is most of the speed (the NER has its own tok2vec).
_SPACY_PIPES = ("ner",)
_PLACEHOLDER = re.compile(r"\[[A-Z_]+\]")


@dataclass(frozen=True)
class Masked:
    text: str
    found: tuple[str, ...]  # placeholder types, once per finding, in text order


# --- recognisers --------------------------------------------------------------------------------------
# Bounded repetitions only (see chat/guard.py): time in proportion to the text, safe on the event loop.

_CASE_SENSITIVE = regex.DOTALL | regex.MULTILINE
_EMAIL = r"\b[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}\b"
_CARD = r"\b(?:\d[ -]?){11,18}\d\b"
_IBAN = r"\b[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,3})?\b"
_SSN = r"\b(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}\b"
_PHONE = r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?)?\d{3}[ .-]?\d{3,4}(?:[ .-]?\d{2,4})?\b"
_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Square|Sq|"
    r"Terrace|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Trail|Crescent|Close|Alley|Row|Strasse|Straße|Gasse|Weg)"
)
_STREET = (
    rf"\b\d{{1,6}}[A-Za-z]?,?\s{{1,3}}(?:[A-Z][\w'.-]{{0,30}}\s{{1,3}}){{1,4}}{_STREET_SUFFIX}\b\.?"
    r"(?:,?\s{1,3}(?:Apt\.?|Suite|Unit|\#)\s{0,3}\d{1,6})?"
)
# A capitalised name right after words that introduce one ("my last name is", "Dear", "my wife"): the small
# NER model misses rare names that a visitor states in these words.
_NAME = r"\p{Lu}[\p{Ll}'’-]{1,30}(?:\s\p{Lu}\.?(?:[\p{Ll}'’-]{1,30})?){0,2}"
_NAME_CUE = (
    r"(?<=(?i:\bname is|\bname's|\bname:|\bname\?|\bcall me|\bi am called|\bi'm called|\bdear|\bhi|\bhello|"
    r"\b(?:mr|mrs|ms|miss|dr|prof)\.?|\bmy (?:wife|husband|partner|son|daughter|kid|child|mother|mom|mum|"
    r"father|dad|brother|sister|friend|boss|coach|trainer|doctor|girlfriend|boyfriend))[ \t]{1,3})"
) + _NAME


# Given names that are also everyday English words, months and days: taken as a name only next to a surname.
# The second line on: the list's names found five times or more in lowercase in BANKING77's training
# questions and the exercise instructions.
_NAME_WORDS = frozenset("""
    floor fee long don tell ago bent way pin haven line won free soon age lean lie hang mat chin okay revert
    fine stole edit run dip said non toe visa core odd ok stone jerk aren lot bill trace price ate lap constant
    max essence hope son walk swim train rest
    hi hey hello oh ok okay tell thanks please sorry yes well sure great cool nice fine good best help im don
    won soon visa will may can june april august mark bill pat rose hope chase art sue max ray dawn eve
    summer autumn winter spring sky love long king young golden star joy faith grace lily ruby amber iris
    jasmine ivy holly heather daisy violet pearl crystal angel hunter major earl duke prince rich frank gene
    rob guy bob jack jimmy penny sunny happy lean press curl row pull push lat drew dash page bay
    january february march july september october november december
    monday tuesday wednesday thursday friday saturday sunday christmas easter
""".split())
_NAME_WORD = r"\p{Lu}\p{Ll}{1,30}(?:['’-]\p{Lu}?\p{Ll}{1,30}){0,2}"
_CAPITALISED = regex.compile(
    rf"(?<![\p{{L}}\p{{N}}'’-]){_NAME_WORD}(?:[ \t]{{1,3}}(?:\p{{Lu}}\.?[ \t]{{1,3}})?{_NAME_WORD}){{0,2}}"
)
_WORD_CAPITALISED = regex.compile(r"(?<![\p{L}\p{N}'’-])\p{Lu}[\p{L}'’]*")
_WORD = regex.compile(r"[\p{L}\p{N}]+")
_PRONOUN_I = frozenset({"I", "I'm", "I've", "I'd", "I'll", "I’m", "I’ve", "I’d", "I’ll"})
_SENTENCE_START = regex.compile(r"(?:^|[.!?:;\n>\"“(]\s*)$")


class _GivenNameRecognizer(EntityRecognizer):
    """A capitalised given name from a list of about 48,000 (gender-guesser's, from 50 countries), with
    the capitalised words after it (a surname). The small NER model misses rare names; a lone name that
    is also an everyday word ("Will", "Tell", "May") counts only with a surname after it."""

    def __init__(self) -> None:
        super().__init__(supported_entities=["PERSON"], name="given_name")

    def load(self) -> None:
        self.names = _given_names()

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[PresidioResult]:
        results = []
        for match in _CAPITALISED.finditer(text):
            # "Sure Maureen Thibault": the name starts at the first given name of the capitalised run
            words = [w for w in _WORD_CAPITALISED.finditer(match.group()) if w.group() in self.names]
            if not words:
                continue
            start = match.start() + words[0].start()
            if text[start:match.end()].casefold() in _NAME_WORDS:
                continue  # a lone everyday word ("Will", "Tell")
            results.append(PresidioResult("PERSON", start, match.end(), 0.6))
        return results


_PHONE_WINDOW = regex.compile(r"[+(]?\d[\d \t().-]{5,24}\d")
_PHONE_WINDOWS_MAX = 12  # more in one message is no conversation; the pattern recogniser still covers them


class _WindowedPhoneRecognizer(EntityRecognizer):
    """Presidio's phone recogniser (Google's libphonenumber) run only on short runs of digits and
    separators, a dozen at most: over a whole crafted text of digits it takes hundreds of milliseconds."""

    def __init__(self) -> None:
        super().__init__(supported_entities=["PHONE_NUMBER"], name="phone_windows")

    def load(self) -> None:
        self.inner = PhoneRecognizer(supported_regions=settings.PII_PHONE_REGIONS)

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[PresidioResult]:
        results = []
        for window in itertools.islice(_PHONE_WINDOW.finditer(text), _PHONE_WINDOWS_MAX):
            for found in self.inner.analyze(window.group(), entities, nlp_artifacts):
                results.append(PresidioResult(found.entity_type, window.start() + found.start,
                                              window.start() + found.end, found.score))
        return results


class _ChecksumRecognizer(PatternRecognizer):
    """A pattern whose matches count only when their check digits add up."""

    def __init__(self, entity: str, pattern: str, check: Callable[[str], bool]) -> None:
        super().__init__(entity, name=f"{entity.lower()}_checksum", patterns=[Pattern(entity, pattern, 0.3)])
        self._check = check

    def validate_result(self, pattern_text: str) -> bool:
        return self._check(pattern_text)


def _luhn_ok(text: str) -> bool:
    digits = [int(ch) for ch in text if ch.isdigit()]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits)))
    return 12 <= len(digits) <= 19 and total % 10 == 0


def _iban_ok(text: str) -> bool:
    compact = text.replace(" ", "").upper()
    rearranged = compact[4:] + compact[:4]
    return 15 <= len(compact) <= 34 and int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _recognisers() -> list[EntityRecognizer]:
    return [
        PatternRecognizer("EMAIL_ADDRESS", name="email", patterns=[Pattern("email", _EMAIL, 1.0)]),
        CreditCardRecognizer(),  # issuers' prefixes, Luhn-checked
        _ChecksumRecognizer("CREDIT_CARD", _CARD, _luhn_ok),  # any 12-19 digits passing Luhn
        _ChecksumRecognizer("IBAN_CODE", _IBAN, _iban_ok),  # ISO 13616 check digits, either case
        UsSsnRecognizer(),
        PatternRecognizer("US_SSN", name="ssn_grouped", patterns=[Pattern("ssn", _SSN, 0.6)]),
        IpRecognizer(),  # v4 and v6, validated by ipaddress
        _WindowedPhoneRecognizer(),
        PatternRecognizer("PHONE_NUMBER", name="phone_digits", patterns=[Pattern("phone", _PHONE, 0.5)]),
        PatternRecognizer("STREET_ADDRESS", name="street", patterns=[Pattern("street", _STREET, 0.6)],
                          global_regex_flags=_CASE_SENSITIVE),
    ]


# --- the engine ---------------------------------------------------------------------------------------

_lock = threading.Lock()


@functools.cache
def _structured() -> tuple[EntityRecognizer, ...]:
    return tuple(_recognisers())


@functools.cache
def _given_names() -> frozenset[str]:
    return frozenset(Detector().names) - {w.capitalize() for w in STOP_WORDS}


_CUE_RECOGNISER = "name_cue"


@functools.cache
def _names() -> tuple[EntityRecognizer, ...]:
    given = _GivenNameRecognizer()
    cue = PatternRecognizer("PERSON", name=_CUE_RECOGNISER, patterns=[Pattern("name", _NAME_CUE, 0.7)],
                            global_regex_flags=_CASE_SENSITIVE)
    if not settings.PII_NAME_LISTS:
        return given, cue
    return given, cue, NameListRecognizer(NameLists(settings.PII_SPACY_MODEL, _given_names(), _NAME_WORDS))


@functools.cache
def _ner() -> AnalyzerEngine | None:
    """Presidio over spaCy's NER, or None when PII_NER is off."""
    if not settings.PII_NER:
        return None
    with _lock:
        registry = RecognizerRegistry(recognizers=[SpacyRecognizer(supported_entities=list(NER_ENTITIES))])
        return AnalyzerEngine(registry=registry, nlp_engine=_spacy_engine(), supported_languages=["en"])


def _spacy_engine() -> NlpEngine:
    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": "en", "model_name": settings.PII_SPACY_MODEL}],
        "ner_model_configuration": {"model_to_presidio_entity_mapping": _SPACY_TO_PRESIDIO,
                                    "labels_to_ignore": _SPACY_IGNORED, "low_score_entity_names": []},
    })
    engine = provider.create_engine()  # an installed package: spaCy loads it from disk, never downloads
    assert isinstance(engine, SpacyNlpEngine)
    engine.get_nlp("en").select_pipes(enable=list(_SPACY_PIPES))
    return engine


@functools.cache
def _anonymizer() -> AnonymizerEngine:
    return AnonymizerEngine()


@functools.cache
def _operators() -> dict[str, OperatorConfig]:
    return {entity: OperatorConfig("replace", {"new_value": f"[{label}]"}) for entity, label in PLACEHOLDERS.items()}


def pii_warm() -> None:
    """Load the model and the name list and run them once, so the first visitor does not wait for them
    (call at process start: without the knowledge base's public words, which need the database)."""
    global _public
    kept = _public
    _public = (float("inf"), _NEVER, frozenset())
    try:
        pii_mask("Warm up for Jane Doe at jane@example.com.")
    finally:
        _public = kept


# --- public words -------------------------------------------------------------------------------------
# Words of the knowledge base's titles and headings are not the visitor's data, though the NER often
# takes title-cased ones for names ("Arnold Dumbbell Press", "Box Squat"): a name or place all of whose
# words are public is kept.

_NEVER = -1
_public: tuple[float, int, frozenset[str]] = (0.0, _NEVER, frozenset())  # (read at, knowledge version, words)


def pii_public_terms_set(terms: Iterable[str]) -> None:
    """Use these terms as the public words (a benchmark, or a deployment without a knowledge base)."""
    global _public
    _public = (float("inf"), _NEVER, frozenset(w for term in terms for w in _WORD.findall(term.casefold())))


def pii_public_terms_forget() -> None:
    """Read the knowledge base's words again on next use (tests: each starts with an empty database)."""
    global _public
    _public = (0.0, _NEVER, frozenset())


def _public_words() -> frozenset[str]:
    """Re-read when the knowledge base's version moves (seen within seconds, knowledge.selectors), and
    every PII_PUBLIC_TERMS_SECONDS in any case; never from the event loop (no database there)."""
    global _public
    read_at, version, words = _public
    if read_at == float("inf") or _in_event_loop():
        return words
    from knowledge.selectors import kb_version

    current = kb_version()
    if current != version or time.monotonic() - read_at > settings.PII_PUBLIC_TERMS_SECONDS:
        _public = (time.monotonic(), current, _knowledge_words())
    return _public[2]


def _knowledge_words() -> frozenset[str]:
    from knowledge.models import Chunk, Document

    titles = Document.objects.values_list("title", flat=True).distinct()
    headings = Chunk.objects.exclude(heading="").values_list("heading", flat=True).distinct()
    return frozenset(w for text in [*titles, *headings] for w in _WORD.findall(text.casefold()))


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _is_public(text: str, words: frozenset[str]) -> bool:
    found = _WORD.findall(text.casefold())
    return bool(found) and all(w in words for w in found)


# --- masking ------------------------------------------------------------------------------------------


def pii_mask(text: str) -> Masked:
    """Every kind of personal data found, names and places included."""
    return _replaced(text, pii_findings(text))


def pii_mask_structured(text: str) -> Masked:
    """Only what the pattern recognisers find (emails, phones, cards, IBANs, SSNs, IP addresses, street
    addresses): no model, fast enough for the event loop."""
    return _replaced(text, pii_findings(text, structured_only=True))


def pii_mask_answer(text: str, *, public: str = "") -> Masked:
    """An answer as it is stored. A name or place it repeats from `public` text (the knowledge excerpts
    it was given) is kept: an exercise named after a person is not the visitor's data. Structured
    identifiers are masked wherever they come from."""
    folded = public.casefold()
    return _replaced(text, [r for r in pii_findings(text) if not (
        r.entity_type in _PLACES_AND_NAMES and folded and text[r.start:r.end].casefold() in folded)])


def pii_findings(text: str, *, structured_only: bool = False) -> list[RecognizerResult]:
    """What would be masked: (entity_type, start, end, score) per finding, overlaps resolved by the
    anonymizer; placeholders already in the text are left alone."""
    if not text.strip():
        return []
    results = _run(_structured(), text)
    if not structured_only:
        results += _name_results(text)
    threshold = settings.PII_SCORE_THRESHOLD
    kept = [r for r in EntityRecognizer.remove_duplicates(results)
            if r.score >= threshold and not _PLACEHOLDER.fullmatch(text[r.start:r.end].strip())]
    return [RecognizerResult(r.entity_type, r.start, r.end, r.score) for r in kept]


def _run(recognisers: Iterable[EntityRecognizer], text: str) -> list[PresidioResult]:
    return [r for rec in recognisers for r in rec.analyze(text, list(rec.supported_entities), None)]  # type: ignore[arg-type]


def _name_results(text: str) -> list[PresidioResult]:
    results = _run(_names(), text)
    ner, public = _ner(), _public_words()
    may_name = ner is not None and _may_name(text, public)
    if (results or may_name) and _in_another_language(text):
        return []
    if ner is not None and may_name:
        results += ner.analyze(text, language="en", entities=list(NER_ENTITIES))
    return [r for r in results if not _is_public(text[r.start:r.end], public) and not _a_place(r, text)]


def _a_place(result: PresidioResult, text: str) -> bool:
    """A country or a continent (chat/safety/places.py), unless a cue says it is someone ("my name is Jordan",
    "my daughter Georgia")."""
    cued = (result.recognition_metadata or {}).get(PresidioResult.RECOGNIZER_NAME_KEY) == _CUE_RECOGNISER
    return not cued and coarse_place(text[result.start:result.end])


def _in_another_language(text: str) -> bool:
    """The NER model and the name lists are English: over German or Spanish they take nouns and verbs for
    names ("[PERSON] mache ich [PERSON]"), and the question loses what it asks."""
    return confident_language(text) not in (None, NAMES_LANGUAGE)


def _may_name(text: str, public: frozenset[str]) -> bool:
    """Whether the NER could find anything: it keys on capitals, so a text with none past the start of
    its sentences (and "I") is skipped, unless a sentence opens with a given name. Capitalised words of the
    knowledge base's titles do not count: what the NER would find in them is kept anyway ("How do I do the
    Barbell Squat?", most of a demo's questions, costs no NER pass)."""
    for match in _WORD_CAPITALISED.finditer(text):
        word = match.group()
        if word.casefold() in public:
            continue
        at_start = bool(_SENTENCE_START.search(text[: match.start()]))
        if not at_start and word not in _PRONOUN_I or at_start and word in _given_names():
            return True
    return False


def _replaced(text: str, results: list[RecognizerResult]) -> Masked:
    if not results:
        return Masked(text, ())
    done = _anonymizer().anonymize(text=text, analyzer_results=results, operators=_operators())
    found = tuple(PLACEHOLDERS[item.entity_type] for item in sorted(done.items, key=lambda i: i.start))
    return Masked(done.text, found)


# --- originals, sealed --------------------------------------------------------------------------------


@functools.cache
def _fernet() -> Fernet:
    if settings.PII_KEY:
        return Fernet(settings.PII_KEY)
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"spotter", info=b"pii-originals-v1").derive(
        settings.SECRET_KEY.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def pii_seal(original: str) -> str:
    """The original text encrypted (Fernet token), for a column staff may read with `chat.view_pii`."""
    return _fernet().encrypt(original.encode()).decode()


def pii_unseal(token: str) -> str | None:
    """The original text, or None when there is none or the key changed since it was sealed."""
    if not token:
        return None
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        return None


# --- plain text hygiene -------------------------------------------------------------------------------


def text_clean(text: str) -> str:
    """One line of printable text: control and format characters dropped (they can forge lines or hide
    words in a model's context), runs of whitespace made one space."""
    kept = "".join(" " if ch.isspace() else ch for ch in text if unicodedata.category(ch)[0] != "C" or ch.isspace())
    return " ".join(kept.split())
