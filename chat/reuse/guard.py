"""The precision guard: may a stored answer be served for a new question?

A fixed cosine threshold serves whatever single entry lies closest, so a near-by question with
another meaning ("how do I gain weight" / "how do I lose weight") gets the wrong answer. This
guard asks three things instead (bench/cache.py measures each):

1. Agreement: the nearest stored questions must agree on the answer. The nearest one must be
   similar enough, followed by `min_support` entries with the same answer, and the nearest entry
   with a *different* answer must be at least `min_gap` further away. A question alone in its
   neighbourhood is served only as a near-duplicate (`near_duplicate`, with its own gap).
2. Lexical checks against the matched question: a negation or an opposite word on one side only,
   different numbers, different names.
3. Thresholds calibrated from labelled pairs for a target precision (`manage.py cache_calibrate`).

Pure functions: no database, no Redis, so the benchmark and the pipeline run the same code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache

import snowballstemmer


@dataclass(frozen=True)
class GuardParams:
    min_similarity: float = 0.90
    min_gap: float = 0.10
    min_support: int = 3
    near_duplicate: float = 0.97
    near_duplicate_gap: float = 0.10
    neighbours: int = 10

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Neighbour:
    """A stored question near the new one; `answer_key` is equal for entries with the same answer."""

    entry_id: int
    question: str
    answer_key: str
    similarity: float


@dataclass(frozen=True)
class Decision:
    accepted: bool
    reason: str  # why it was served or refused, shown in admin on the answer
    neighbour: Neighbour | None = None
    similarity: float = 0.0
    gap: float = 0.0
    support: int = 0

    def details(self) -> dict[str, object]:
        return {
            "reason": self.reason, "similarity": round(self.similarity, 4), "gap": round(self.gap, 4),
            "support": self.support, "entry_id": self.neighbour.entry_id if self.neighbour else None,
        }


LEXICAL_CHECKS = ("negation", "number", "entity")


# --- agreement among neighbours ---------------------------------------------------------------------


def agreement(neighbours: Sequence[Neighbour]) -> tuple[float, float, int]:
    """(similarity of the nearest, gap to the nearest different answer, leading run of the same answer)."""
    top = neighbours[0]
    support = 0
    for n in neighbours:
        if n.answer_key != top.answer_key:
            break
        support += 1
    others = [n.similarity for n in neighbours if n.answer_key != top.answer_key]
    # No different answer among the neighbours: the gap is at least the distance to the last one.
    gap = top.similarity - (max(others) if others else min(n.similarity for n in neighbours) - 1.0)
    return top.similarity, gap, support


def passes_agreement(similarity: float, gap: float, support: int, params: GuardParams) -> bool:
    consensus = similarity >= params.min_similarity and gap >= params.min_gap and support >= params.min_support
    duplicate = similarity >= params.near_duplicate and gap >= params.near_duplicate_gap
    return consensus or duplicate


def decide(
    question: str, neighbours: Sequence[Neighbour], params: GuardParams, checks: Sequence[str] = LEXICAL_CHECKS
) -> Decision:
    if not neighbours:
        return Decision(False, "no stored question nearby")
    similarity, gap, support = agreement(neighbours)
    top = neighbours[0]
    def decision(accepted: bool, reason: str) -> Decision:
        return Decision(accepted, reason, top, similarity, gap, support)

    if not passes_agreement(similarity, gap, support, params):
        return decision(False, "neighbours do not agree closely enough")
    for check in checks:
        if LEXICAL[check](question, top.question):
            return decision(False, f"{check} mismatch")
    return decision(True, "near-duplicate" if support < params.min_support else "neighbours agree")


# --- lexical checks ---------------------------------------------------------------------------------


_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_NEGATION_CUES = frozenset(
    "not no never without cannot nothing none nor neither nobody nowhere".split()
)
_STOPWORDS = frozenset(
    """a an the i me my we our you your it its is are was were be been am do does did doing have has had
    to of in on at for from by with about as into than then so and or but if can could would should will
    shall may might must how what why when where which who whom whose this that these those there here
    please yet still just any some get got""".split()
)
# Pairs that flip a question's meaning while leaving its embedding almost unchanged.
_OPPOSITES = [
    ("gain", "lose"), ("increase", "decrease"), ("more", "less"), ("before", "after"), ("add", "remove"),
    ("open", "close"), ("start", "stop"), ("enable", "disable"), ("buy", "sell"), ("deposit", "withdraw"),
    ("send", "receive"), ("upper", "lower"), ("maximum", "minimum"), ("max", "min"), ("fast", "slow"),
    ("heavy", "light"), ("high", "low"), ("cheap", "expensive"), ("accept", "reject"), ("lock", "unlock"),
    ("activate", "deactivate"), ("include", "exclude"), ("push", "pull"), ("inner", "outer"),
    ("beginner", "advanced"), ("left", "right"), ("hot", "cold"), ("bulk", "cut"), ("long", "short"),
    ("first", "last"), ("easy", "hard"), ("safe", "dangerous"), ("allowed", "forbidden"),
]
_NUMBER_WORDS = {
    w: str(i) for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split()
    )
} | {"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80",
     "ninety": "90", "hundred": "100", "thousand": "1000", "half": "0.5", "once": "1", "twice": "2",
     "single": "1", "double": "2", "triple": "3", "dozen": "12"}
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


@lru_cache(maxsize=1)
def _stemmer() -> snowballstemmer.stemmer:
    return snowballstemmer.stemmer("english")


def _words(text: str) -> list[str]:
    return [w.replace("’", "'").lower() for w in _WORD.findall(text)]


def _stem(word: str) -> str:
    return _stemmer().stemWord(word)


def _content(text: str) -> tuple[set[str], int]:
    """(stems of the content words, number of negations)."""
    stems, negations = set(), 0
    for word in _words(text):
        if word in _NEGATION_CUES or word.endswith("n't"):
            negations += 1
        elif word not in _STOPWORDS:
            stems.add(_stem(word))
    return stems, negations


_OPPOSITE_STEMS = [(_stem(a), _stem(b)) for a, b in _OPPOSITES]
# Negation flips meaning when it is the difference between two questions; between paraphrases it is
# only wording ("why hasn't my card arrived" / "where is my card"). Measured on bench/cache.py: any
# one-sided negation refused 160 right answers and no wrong one.
MINIMAL_PAIR_OVERLAP = 0.75


def negation_mismatch(a: str, b: str) -> bool:
    """The questions are the same words but for a negation, or an opposite word on each side."""
    stems_a, negations_a = _content(a)
    stems_b, negations_b = _content(b)
    overlap = len(stems_a & stems_b) / max(len(stems_a | stems_b), 1)
    if (negations_a % 2) != (negations_b % 2) and overlap >= MINIMAL_PAIR_OVERLAP:
        return True
    only_a, only_b = stems_a - stems_b, stems_b - stems_a
    return any((x in only_a and y in only_b) or (y in only_a and x in only_b) for x, y in _OPPOSITE_STEMS)


def _numbers(text: str) -> set[str]:
    found = {n.replace(",", ".") for n in _NUMBER.findall(text)}
    found |= {_NUMBER_WORDS[w] for w in _words(text) if w in _NUMBER_WORDS}
    return {str(float(n)) for n in found}


def number_mismatch(a: str, b: str) -> bool:
    """Both questions name quantities and they differ ("5 km" / "10 km"); one-sided numbers pass."""
    numbers_a, numbers_b = _numbers(a), _numbers(b)
    return bool(numbers_a and numbers_b and numbers_a != numbers_b)


_SENTENCE_START = re.compile(r"(?:^|[.!?]\s+|\n)\s*[\"'(]*$")


def _names(text: str) -> set[str]:
    """Capitalised words not starting a sentence, acronyms and mixed letter-digit tokens."""
    names = set()
    for match in _WORD.finditer(text):
        word = match.group()
        if word in {"I", "I'm", "I've", "I'd", "I'll"}:
            continue
        capitalised = word[0].isupper() and not _SENTENCE_START.search(text[: match.start()])
        acronym = len(word) > 1 and word.isupper()
        mixed = any(ch.isdigit() for ch in word) and any(ch.isalpha() for ch in word)
        if capitalised or acronym or mixed:
            names.add(word.lower())
    return names


def entity_mismatch(a: str, b: str) -> bool:
    """Each question names something the other does not mention ("Visa" / "Mastercard")."""
    words_a, words_b = set(_words(a)), set(_words(b))
    only_a = {n for n in _names(a) if n not in words_b}
    only_b = {n for n in _names(b) if n not in words_a}
    return bool(only_a and only_b)


LEXICAL = {"negation": negation_mismatch, "number": number_mismatch, "entity": entity_mismatch}
