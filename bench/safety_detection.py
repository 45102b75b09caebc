"""Injection detection and offline moderation, measured on what they were not trained on.

Used by bench/safety.py; runnable alone: `python bench/safety_detection.py [--attacks CSV] [--benign CSV]`.
A CSV has a `text` or `prompt` column and an optional `source` column to report by.

Defaults (../shared/data/): attacks are the Giskard collection (never trained on) and the held-out 30 %
of jailbreak-classification's jailbreaks; benign traffic is BANKING77's test questions and the held-out
benign prompts of jailbreak-classification. Moderation: the held-out 30 % of OpenAI's moderation samples
and BANKING77's test questions. The split is chat.safety.train's (seeded), so it matches the training.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
GISKARD = DATA / "prompt-injections-giskard" / "prompt_injections.csv"
BANKING_TEST = DATA / "banking77" / "test.csv"


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def load_texts(path: Path) -> list[tuple[str, str]]:
    """(text, source) from any CSV with a `text` or `prompt` column; the source column when there is one,
    else the file's name."""
    with Path(path).open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    column = "text" if rows and "text" in rows[0] else "prompt"
    return [(r[column], r.get("source") or Path(path).stem) for r in rows if r.get(column)]


def default_attacks() -> list[tuple[str, str]]:
    from chat.safety.train import injection_held_out

    giskard = [(text, "giskard") for text, _ in load_texts(GISKARD)]
    return giskard + [(r.text, "jailbreak-classification (held out)") for r in injection_held_out() if r.label]


def default_benign() -> list[tuple[str, str]]:
    from chat.safety.train import injection_held_out

    banking = [(text, "banking77 test") for text, _ in load_texts(BANKING_TEST)]
    return banking + [(r.text, "jailbreak-classification benign (held out)") for r in injection_held_out()
                      if not r.label]


def _old_regex_hits(texts: list[str]) -> list[bool]:
    from chat import guard

    pattern = getattr(guard, "_INJECTION", None)
    return [bool(pattern and pattern.search(t)) for t in texts]


def injection_report(attacks: list[tuple[str, str]], benign: list[tuple[str, str]]) -> tuple[str, dict]:
    """A markdown table by source (the detector beside the old regex) and injection_recall,
    benign_false_alarm (the detector's), with the regex's and the detector's p99 per question."""
    _setup()
    from bench.common import pct
    from chat.safety.injection import injection_check

    injection_check("warm up")
    rows = [(text, source, True) for text, source in attacks] + [(text, source, False) for text, source in benign]
    timings, ours = [], []
    for text, _, _ in rows:
        started = time.perf_counter()
        ours.append(injection_check(text).suspected)
        timings.append((time.perf_counter() - started) * 1000)
    old = _old_regex_hits([text for text, _, _ in rows])
    lines = ["| source | kind | rows | detector flags | old regex flags |", "|---|---|---:|---:|---:|"]
    for source in dict.fromkeys(source for _, source, _ in rows):
        picked = [i for i, (_, s, _) in enumerate(rows) if s == source]
        kind = "attack" if rows[picked[0]][2] else "benign"
        lines.append(f"| {source} | {kind} | {len(picked)} | {_share(ours, picked)} | {_share(old, picked)} |")
    attack_idx = [i for i, r in enumerate(rows) if r[2]]
    benign_idx = [i for i, r in enumerate(rows) if not r[2]]
    metrics = {
        "injection_recall": _rate(ours, attack_idx), "benign_false_alarm": _rate(ours, benign_idx),
        "regex_injection_recall": _rate(old, attack_idx), "regex_benign_false_alarm": _rate(old, benign_idx),
        "injection_p99_ms": round(pct(timings, 99), 3),
        # question-sized texts (most jailbreak prompts are pages long, and cost in proportion)
        "injection_p99_ms_questions": round(pct([t for t, r in zip(timings, rows, strict=True) if len(r[0]) <= 300]
                                                or [0.0], 99), 3),
    }
    for label, kind, picked in (("**all attacks**", "attack", attack_idx), ("**all benign**", "benign", benign_idx)):
        lines.append(f"| {label} | {kind} | {len(picked)} | {_share(ours, picked)} | {_share(old, picked)} |")
    return "\n".join(lines), metrics


def moderation_report() -> tuple[str, dict]:
    """The offline classifier on the held-out moderation samples (recall on flagged rows, false flags on
    unflagged ones, by category) and on BANKING77 test questions (false flags on benign questions)."""
    _setup()
    from chat.safety.moderation import moderate_offline
    from chat.safety.train import CATEGORY_NAMES, moderation_split

    _, held_out = moderation_split()
    verdicts = [(moderate_offline(text).flagged, cats) for text, cats in held_out]
    flagged = [v for v, cats in verdicts if any(cats.values())]
    clean = [v for v, cats in verdicts if not any(cats.values())]
    banking = [moderate_offline(text).flagged for text, _ in load_texts(BANKING_TEST)]
    lines = ["| rows | count | flagged by the offline classifier |", "|---|---:|---:|",
             f"| moderation samples, flagged (held out) | {len(flagged)} | {_mean(flagged):.3f} |",
             f"| moderation samples, unflagged (held out) | {len(clean)} | {_mean(clean):.3f} |",
             f"| banking77 test questions | {len(banking)} | {_mean(banking):.4f} |"]
    for code, name in CATEGORY_NAMES.items():
        hits = [v for v, cats in verdicts if cats.get(code)]
        if hits:
            lines.append(f"| … of which {name} | {len(hits)} | {_mean(hits):.3f} |")
    metrics = {"moderation_recall": round(_mean(flagged), 4), "moderation_false_flag": round(_mean(banking), 4),
               "moderation_false_flag_unflagged_samples": round(_mean(clean), 4)}
    return "\n".join(lines), metrics


def _mean(values: list[bool]) -> float:
    return sum(values) / len(values) if values else 0.0


def _rate(flags: list[bool], picked: list[int]) -> float:
    return round(sum(flags[i] for i in picked) / len(picked), 4) if picked else 0.0


def _share(flags: list[bool], picked: list[int]) -> str:
    return f"{sum(flags[i] for i in picked)} ({_rate(flags, picked):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attacks", type=Path, help="CSV of attacks (default: Giskard + held-out jailbreaks)")
    parser.add_argument("--benign", type=Path, help="CSV of benign traffic (default: BANKING77 test + held-out benign)")
    args = parser.parse_args()
    _setup()
    attacks = load_texts(args.attacks) if args.attacks else default_attacks()
    benign = load_texts(args.benign) if args.benign else default_benign()
    injection_table, injection = injection_report(attacks, benign)
    moderation_table, moderation = moderation_report()
    print("## Prompt injection\n\n" + injection_table + "\n\n## Moderation (offline)\n\n" + moderation_table + "\n")
    print("RESULT " + " ".join(f"{k}={v}" for k, v in {**injection, **moderation}.items()))


if __name__ == "__main__":
    main()
