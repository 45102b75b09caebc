"""PII detection: recall and precision per entity type of chat.safety.pii (Presidio with spaCy's small
English NER and the checksum recognisers) beside the regexes it replaced, on the Presidio synthetic set;
and the guard's time per question (NER included) on BANKING77 questions and the synthetic sentences.

A labelled span is found when a finding of a matching type overlaps it; a finding is right when it
overlaps a labelled span of a matching type. `pii_recall_structured` pools email, phone, card, IBAN,
SSN and IP spans; `pii_recall_names` is PERSON.

    python bench/safety_pii.py [--pii FILE] [--questions CSV] [--smoke]

Needs no database (imported by bench/safety.py, which prints the same table). Ends with
`RESULT pii_recall_structured=… pii_recall_names=… guard_p99_ms=…`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, parse_args, pct  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
PII_FILE = DATA / "pii-presidio-synth" / "synth_dataset_v2.json"
QUESTIONS = DATA / "banking77" / "test.csv"
EXERCISES = ROOT / "demo" / "free-exercise-db" / "exercises.json"
STRUCTURED = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS")
REPORTED = (*STRUCTURED, "PERSON", "STREET_ADDRESS", "GPE")
# A finding's type (chat.safety.pii's placeholder) -> the labelled types it may stand for.
MATCHES = {
    "EMAIL": {"EMAIL_ADDRESS"}, "PHONE": {"PHONE_NUMBER"}, "CREDIT_CARD": {"CREDIT_CARD"}, "IBAN": {"IBAN_CODE"},
    "SSN": {"US_SSN"}, "IP_ADDRESS": {"IP_ADDRESS"}, "PERSON": {"PERSON"},
    "ADDRESS": {"STREET_ADDRESS"}, "LOCATION": {"STREET_ADDRESS", "GPE"},
}
Span = tuple[str, int, int]
Finder = Callable[[str], list[Span]]


# --- the regexes replaced (chat/guard.py's scrub_pii before Presidio), kept as the baseline ----------------

_EMAIL = re.compile(r"\b[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}\b")
_CARD = re.compile(r"\b(?:\d[ -]?){13,19}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?)?\d{3}[ .-]?\d{3,4}(?:[ .-]?\d{2,4})?\b")
_ORDER = (("EMAIL", _EMAIL), ("IBAN", _IBAN), ("SSN", _SSN), ("IP_ADDRESS", _IPV4), ("PHONE", _PHONE))


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def regex_spans(text: str) -> list[Span]:
    """What the old scrubber replaced, as spans: cards first, then each pattern where none matched before."""
    spans: list[Span] = []
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and _luhn_ok(digits):
            spans.append(("CREDIT_CARD", m.start(), m.end()))
    for label, pattern in _ORDER:
        for m in pattern.finditer(text):
            if not any(s < m.end() and m.start() < e for _, s, e in spans):
                spans.append((label, m.start(), m.end()))
    return spans


def presidio_spans(text: str) -> list[Span]:
    from chat.safety.pii import PLACEHOLDERS, pii_findings

    return [(PLACEHOLDERS[r.entity_type], r.start, r.end) for r in pii_findings(text)]


# --- scoring ------------------------------------------------------------------------------------------


def score(records: list[dict], finder: Finder) -> dict[str, dict[str, float]]:
    """Per labelled type: recall (and its count); per finding type: precision."""
    found, hidden, total, right, made = Counter(), Counter(), Counter(), Counter(), Counter()
    for record in records:
        gold = [(s["entity_type"], s["start_position"], s["end_position"]) for s in record["spans"]]
        predicted = finder(record["full_text"])
        for kind, start, end in gold:
            total[kind] += 1
            found[kind] += any(kind in MATCHES[p] and s < end and start < e for p, s, e in predicted)
            hidden[kind] += any(s < end and start < e for _, s, e in predicted)  # masked, whatever as
        for kind, start, end in predicted:
            made[kind] += 1
            right[kind] += any(g in MATCHES[kind] and s < end and start < e for g, s, e in gold)
    table = {k: {"recall": found[k] / total[k], "masked": hidden[k] / total[k], "n": total[k]}
             for k in REPORTED if total[k]}
    table["_precision"] = {k: right[k] / made[k] for k in made}
    table["_pooled"] = {
        "structured": sum(found[k] for k in STRUCTURED) / max(1, sum(total[k] for k in STRUCTURED)),
        "names": found["PERSON"] / max(1, total["PERSON"]),
    }
    return table


def guard_timings(texts: Iterable[str]) -> dict[str, float]:
    """Milliseconds per question through chat.guard.guard (limits, injection check, PII with NER)."""
    from chat.guard import guard

    samples = []
    for text in texts:
        start = time.perf_counter()
        guard(text)
        samples.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": pct(samples, 50), "p99_ms": pct(samples, 99), "n": len(samples)}


def false_alarms(texts: list[str]) -> float:
    """Share of benign questions (BANKING77) changed by masking: each is a question the model reads worse."""
    from chat.safety.pii import pii_mask

    return sum(bool(pii_mask(t).found) for t in texts) / max(1, len(texts))


def exercise_questions(rows: int | None) -> list[str]:
    """The demo's domain: a question naming each exercise of its knowledge base, often after a person
    ("Arnold Dumbbell Press"); masking one of those breaks retrieval."""
    return [f"How do I do the {e['name']} properly?" for e in json.loads(EXERCISES.read_text())][:rows]


def _questions(path: Path, rows: int | None) -> list[str]:
    with path.open(newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)][:rows]


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import django

    django.setup()


def pii_report(path: Path = PII_FILE, *, questions: Path = QUESTIONS, rows: int | None = None) -> tuple[str, dict]:
    """The table (text) and its metrics (pii_recall_structured, pii_recall_names, guard_p50_ms, guard_p99_ms,
    pii_false_alarm_benign)."""
    _setup()
    from chat.safety.pii import pii_public_terms_set, pii_warm

    # The demo's knowledge base is the exercise database: its titles are the public words, as they are
    # in a deployment (read from the knowledge tables there; this benchmark needs no database).
    pii_public_terms_set(e["name"] for e in json.loads(EXERCISES.read_text()))
    pii_warm()
    records = json.loads(path.read_text())[:rows]
    benign = _questions(questions, rows)
    ours, old = score(records, presidio_spans), score(records, regex_spans)
    timings = guard_timings(benign + [r["full_text"] for r in records])
    questions_only = guard_timings(benign)
    metrics = {
        "pii_recall_structured": ours["_pooled"]["structured"], "pii_recall_names": ours["_pooled"]["names"],
        "regex_recall_structured": old["_pooled"]["structured"], "regex_recall_names": old["_pooled"]["names"],
        "pii_false_alarm_benign": false_alarms(benign),
        "pii_false_alarm_exercises": false_alarms(exercise_questions(rows)), "guard_p50_ms": timings["p50_ms"],
        "guard_p99_ms": timings["p99_ms"], "guard_p99_ms_banking77": questions_only["p99_ms"],
    }
    return _table(ours, old, metrics, len(records), timings["n"]), metrics


def _table(ours: dict, old: dict, metrics: dict, records: int, timed: int) -> str:
    lines = [f"PII on {records} synthetic sentences (recall: labelled spans found by a matching type)",
             f"{'entity':<16}{'n':>5}{'Presidio':>10}{'regexes':>9}{'masked as any type':>20}"]
    for kind in REPORTED:
        if kind in ours:
            lines.append(f"{kind:<16}{ours[kind]['n']:>5}{ours[kind]['recall']:>10.3f}"
                         f"{old.get(kind, {}).get('recall', 0.0):>9.3f}{ours[kind]['masked']:>20.3f}")
    lines.append(f"{'finding':<16}{'':>5}{'precision':>10}{'regexes':>9}")
    for kind in MATCHES:
        if kind in ours["_precision"] or kind in old["_precision"]:
            mine, theirs = ours["_precision"].get(kind), old["_precision"].get(kind)
            lines.append(f"{kind:<16}{'':>5}{_num(mine):>10}{_num(theirs):>9}")
    lines.append(f"structured recall {metrics['pii_recall_structured']:.3f} (regexes "
                 f"{metrics['regex_recall_structured']:.3f}), names {metrics['pii_recall_names']:.3f} "
                 f"(regexes {metrics['regex_recall_names']:.3f})")
    lines.append(f"benign questions masked: BANKING77 {metrics['pii_false_alarm_benign']:.3f}, "
                 f"naming an exercise of the demo {metrics['pii_false_alarm_exercises']:.3f}")
    lines.append(f"guard with NER over {timed} texts: p50 {metrics['guard_p50_ms']:.2f} ms, "
                 f"p99 {metrics['guard_p99_ms']:.2f} ms (BANKING77 questions alone: p99 "
                 f"{metrics['guard_p99_ms_banking77']:.2f} ms)")
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pii", type=Path, default=PII_FILE)
    parser.add_argument("--questions", type=Path, default=QUESTIONS, help="benign questions, a CSV with `text`")
    parser.add_argument("--rows", type=int, default=None, help="at most this many of each (default all)")
    args = parse_args(parser, {"rows": 40})
    table, metrics = pii_report(args.pii, questions=args.questions, rows=args.rows)
    print(table)
    print("RESULT " + " ".join(f"{k}={metrics[k]:.3f}" for k in (
        "pii_recall_structured", "pii_recall_names", "guard_p99_ms")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
