"""Offline answers: do they answer the question, first, and briefly?

Each passage of a SQuAD v1.1 file (default XQuAD's English dev passages) becomes a document ingested
through the project's own ingestion; every question is then searched as the answer pipeline searches
(hybrid, KNOWLEDGE_TOP_K chunks) and answered by the offline provider (`chat.llm.offline`), and, in the
same run, by the provider it replaced (pasting the best document's matching sentences, field lines
included: `baseline_compose` below, kept verbatim as the baseline). An answer counts when its first two
sentences contain the gold answer text; its length is counted in words, citation marks left out.

    make bench
    python bench/offline_answers.py [--squad FILE] [--articles N]
    python bench/offline_answers.py --smoke          # tiny sizes: checks that it runs, measures nothing

Runs in its own database (spotter_bench_offline, dropped afterwards). Prints its table and ends with
`RESULT answer_in_first2=… baseline_answer_in_first2=… mean_words=… retrieved_share=…`.
Target: answer_in_first2 ≥ 0.75 and mean_words ≤ 80.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from common import parse_args, run_in_bench_database
from retrieval import DEFAULT_SQUAD, Question, ingest_corpus, load_squad

DB = "spotter_bench_offline"
SMOKE = {"articles": 2}
TARGET_FIRST2, TARGET_WORDS = 0.75, 80
_MARK = re.compile(r"\s*\[\d+\]")


@dataclass(frozen=True)
class Scored:
    first2: bool
    words: int


# --- the baseline: the offline provider as it was before it selected sentences ----------------------


def baseline_compose(question: str, hits: Sequence) -> str:
    from chat.llm.offline import MIN_SCORE, NOT_FOUND
    from knowledge.chunking import split_sentences

    words = re.compile(r"[a-z0-9]+")
    stop = frozenset("a an and are as at be by can do does for from how i in is it me my of on or should the to "
                     "what when where which who why with you your".split())

    def terms(text: str) -> set[str]:
        return {w for w in words.findall(text.lower()) if w not in stop}

    def units(doc_hits: Sequence) -> list[str]:
        found: list[str] = []
        for hit in sorted(doc_hits, key=lambda h: h.chunk_id):
            for line in hit.text.splitlines():
                found.extend(s for s in split_sentences(line) if s != hit.title and s not in found)
        return found

    def best(doc_hits: Sequence, limit: int) -> list[str]:
        wanted = terms(question) | terms(doc_hits[0].title)
        candidates = units(doc_hits)
        ranked = sorted(range(len(candidates)), key=lambda i: (
            -len(wanted & terms(candidates[i])) / (1 + len(terms(candidates[i]))) ** 0.5, i))
        return [candidates[i] for i in sorted(ranked[:limit])]

    if not hits or hits[0].dense_score < MIN_SCORE:
        return NOT_FOUND
    groups: dict[int, list] = {}
    for number, hit in enumerate(hits, start=1):
        groups.setdefault(hit.document_id, []).append((number, hit))
    parts = []
    for rank, group in enumerate(list(groups.values())[:3]):
        numbers, doc_hits = [n for n, _ in group], [h for _, h in group]
        if rank > 0 and doc_hits[0].dense_score < hits[0].dense_score - 0.08:
            break
        sentences = best(doc_hits, 12 if rank == 0 else 2)
        if sentences:
            parts.append(f"{doc_hits[0].title} {''.join(f'[{n}]' for n in numbers)}\n" + "\n".join(sentences))
    return "\n\n".join(parts) or NOT_FOUND


# --- judging --------------------------------------------------------------------------------------


def score(answer: str, gold: str) -> Scored:
    from knowledge.chunking import split_sentences

    plain = _MARK.sub("", answer)
    sentences = [s for line in plain.splitlines() for s in split_sentences(line)]
    return Scored(first2=gold in " ".join(sentences[:2]), words=len(plain.split()))


def evaluate(questions: list[Question], hits_of: list[list], compose: Callable[[str, Sequence], str]) -> dict:
    scored = [score(compose(q.text, hits), q.answer) for q, hits in zip(questions, hits_of, strict=True)]
    return {"first2": sum(s.first2 for s in scored) / len(scored),
            "mean_words": sum(s.words for s in scored) / len(scored)}


def retrieve_all(questions: list[Question]) -> list[list]:
    """The hits the answer pipeline would compose from: its hybrid search, its k."""
    from django.conf import settings

    from knowledge.embeddings import embed_query
    from knowledge.selectors import search

    return [search(query=q.text, vector=embed_query(q.text), k=settings.KNOWLEDGE_TOP_K) for q in questions]


def run(args) -> int:
    from chat.llm import offline

    passages, _, questions = load_squad(args.squad, args.articles)
    began = time.perf_counter()
    ingest_corpus("squad-passages", passages)
    hits_of = retrieve_all(questions)
    retrieved = sum(any(q.answer in h.text for h in hits) for q, hits in zip(questions, hits_of, strict=True))
    print(f"{args.squad.name}: {len(passages)} passages, {len(questions)} questions, ingested and searched in "
          f"{time.perf_counter() - began:.0f} s; the gold answer is in a retrieved chunk for "
          f"{retrieved / len(questions):.1%} of them\n")
    new = evaluate(questions, hits_of, lambda question, hits: offline.compose_answer(question, hits).text)
    old = evaluate(questions, hits_of, baseline_compose)
    print("| offline provider | answers | gold answer in the first two sentences | mean words |")
    print("|---|---:|---:|---:|")
    for label, row in (("pasted chunks (before)", old), (f"selected sentences (now, {offline.sentence_count()} "
                                                              "sentences)", new)):
        print(f"| {label} | {len(questions)} | {row['first2']:.3f} | {row['mean_words']:.1f} |")
    met = new["first2"] >= TARGET_FIRST2 and new["mean_words"] <= TARGET_WORDS
    print(f"\nTarget: ≥ {TARGET_FIRST2} in the first two sentences, ≤ {TARGET_WORDS} words on average: "
          f"{'met' if met else 'NOT met'}")
    print(f"\nRESULT answer_in_first2={new['first2']:.3f} baseline_answer_in_first2={old['first2']:.3f} "
          f"mean_words={new['mean_words']:.1f} retrieved_share={retrieved / len(questions):.3f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--squad", type=Path, default=DEFAULT_SQUAD, help="a file in SQuAD v1.1 format")
    parser.add_argument("--articles", type=int, default=None, help="only the first N articles (default: all)")
    args = parse_args(parser, SMOKE)
    return run_in_bench_database(lambda: run(args), name=DB)


if __name__ == "__main__":
    sys.exit(main())
