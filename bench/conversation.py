"""Follow-up questions: does the standalone query retrieve what the follow-up means?

TREC CAsT 2021 topics: every turn's canonical passage goes into a fresh knowledge base, through the
project's own ingestion, beside the exercise database and the XQuAD passages as distractors. Each
topic is then asked turn by turn, three ways: Spotter's standalone query, as one conversation through
the real pipeline in offline mode (chat.pipeline: each question stored, prepared, answered and stored,
so the next turn reads the stored conversation: the questions, the offline answers and the sources
they cited); the raw utterance alone (what search saw before standalone queries) and the assessors'
manual rewrite (the upper bound), both as plain searches. A turn is found at k when a chunk of its
canonical passage is among the top k.

    make bench                                       # runs this under the embedded Postgres
    python bench/conversation.py [--cast DIR_OR_FILE] [--topics N] [--distractors N]
    python bench/conversation.py --smoke             # tiny sizes: checks that it runs, measures nothing

Runs in its own database (spotter_bench_conversation, dropped afterwards; `--keep-db` keeps it and
`--reuse-db` runs again on it without ingesting, about a minute). Prints its tables and ends with
`RESULT raw_hit5=… contextual_hit5=… manual_hit5=… gap_closed=…`, gap_closed being
(contextual - raw) / (manual - raw) at hit@5.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common import ROOT, parse_args, pct, run_in_bench_database, with_database
from retrieval import DEFAULT_SQUAD, ingest_corpus, ingest_distractors, load_squad

DEFAULT_CAST = ROOT.parent / "shared" / "data" / "trec-cast-2021-a"
SMOKE = {"topics": 1, "distractors": 10, "squad_articles": 1}
BENCH_DB = "spotter_bench_conversation"
# CAsT passages have no titles; their ids as titles would be words that name one passage each, which real
# titles are not (the standalone query adds the last cited titles). A title without words is no word at all.
UNTITLED = "—"


@dataclass(frozen=True)
class Turn:
    raw: str
    manual: str
    passage_id: str  # the external id of the canonical passage's document


def cast_file(path: Path) -> Path:
    return next(path.glob("*.json")) if path.is_dir() else path


def load_cast(path: Path, topics: int | None) -> tuple[list[dict], list[list[Turn]]]:
    """(passage records, the topics' turns) of a CAsT topics file; a passage several turns share is
    ingested once."""
    passages: dict[str, dict] = {}
    conversations = []
    for topic in json.loads(cast_file(path).read_text())[:topics]:
        turns = []
        for turn in topic["turn"]:
            key = f"{turn['canonical_result_id']}-{turn['passage_id']}"
            passages.setdefault(key, {"id": key, "title": UNTITLED, "context": turn["passage"]})
            turns.append(Turn(turn["raw_utterance"], turn["manual_rewritten_utterance"], key))
        conversations.append(turns)
    return list(passages.values()), conversations


# --- one conversation -----------------------------------------------------------------------------


RANKED = 10  # hits ranked per query: hit@1, hit@5 and MRR@10 read them


def search_ranked(text: str, vector, full_text=None) -> list:
    from knowledge.selectors import search

    return search(query=text, vector=vector, k=RANKED, min_score=0.0, full_text=full_text)


def rank_of(hits, passage_id: str, external_ids: dict[int, str]) -> int | None:
    for rank, hit in enumerate(hits, 1):
        if external_ids.get(hit.document_id) == passage_id:
            return rank
    return None


@dataclass
class Measured:
    ranks: dict[str, list[int | None]]
    standalone_ms: list[float]
    embed_ms: list[float]  # a rewritten query's own embedding
    left_alone: list[tuple[bool, bool]]  # (Spotter left it as it was, the assessors did)


async def run_conversations(conversations: list[list[Turn]], external_ids: dict[int, str]) -> Measured:
    from chat.db import db_call

    measured = Measured({"raw": [], "contextual": [], "manual": []}, [], [], [])
    for number, turns in enumerate(conversations):
        conversation_id = None
        for turn in turns:
            ranked, query, conversation_id = await ask_in_conversation(
                turn.raw, conversation_id, visitor=f"cast-{number}")
            measured.ranks["contextual"].append(rank_of(ranked.hits, turn.passage_id, external_ids))
            measured.standalone_ms.append(ranked.steps.get("standalone", 0.0))
            if "embed_standalone" in ranked.steps:
                measured.embed_ms.append(ranked.steps["embed_standalone"])
            for label, text in (("raw", turn.raw), ("manual", turn.manual)):
                found = await db_call(search_alone)(text)
                measured.ranks[label].append(rank_of(found, turn.passage_id, external_ids))
            measured.left_alone.append((not query.rewritten, _same(turn.raw, turn.manual)))
    return measured


@dataclass
class Ranked:
    hits: list
    steps: dict[str, float]  # the pipeline's step timings, ms


async def ask_in_conversation(question: str, conversation_id, *, visitor: str):
    """One turn through the pipeline, offline: the question stored, prepared (the follow-up made to stand
    alone from the stored conversation, then searched) for its top RANKED hits, then answered and stored,
    so the next turn reads it. Returns (ranked hits, the standalone query, the conversation)."""
    from dataclasses import replace

    from django.test import override_settings

    from chat import pipeline
    from chat.models import Conversation
    from chat.searched import full_text_started
    from chat.streams import NullSink
    from knowledge.embeddings import aembed_query

    turn = await pipeline.open_turn(visitor_id=visitor, conversation_id=conversation_id, text=question,
                                    client_msg_id="", channel=Conversation.Channel.API)
    with override_settings(KNOWLEDGE_TOP_K=RANKED):
        prepared = await pipeline.prepare(turn)
    # prepare() took the turn's embedding and full-text half (or dropped them for the standalone query's):
    # answering prepares again.
    again = replace(turn, embedding=asyncio.ensure_future(aembed_query(turn.question)),
                    full_text=full_text_started(turn.question, turn.timer))
    await pipeline.answer_turn(again, NullSink())
    return Ranked(prepared.hits, dict(turn.timer.steps)), prepared.query, turn.conversation_id


def search_alone(text: str) -> list:
    """A plain search for `text` alone, as the pipeline's retrieval runs it at k=RANKED."""
    from knowledge.embeddings import embed_query

    return search_ranked(text, embed_query(text))


def _same(a: str, b: str) -> bool:
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


# --- report ---------------------------------------------------------------------------------------


def scores(ranks: list[int | None]) -> dict[str, float]:
    return {
        "hit1": sum(r == 1 for r in ranks) / len(ranks),
        "hit5": sum(r is not None and r <= 5 for r in ranks) / len(ranks),
        "mrr10": sum(1 / r for r in ranks if r) / len(ranks),
    }


LABELS = {"raw": "raw utterance alone", "contextual": "Spotter's standalone query (offline)",
          "manual": "assessors' manual rewrite (upper bound)"}


def print_table(measured: Measured, chunks: int) -> dict[str, dict[str, float]]:
    table = {label: scores(ranks) for label, ranks in measured.ranks.items()}
    print(f"\nCanonical passage retrieved ({len(measured.standalone_ms)} turns, {chunks} chunks in the index)\n")
    print("| query | hit@1 | hit@5 | MRR@10 |")
    print("|---|---:|---:|---:|")
    for label, row in table.items():
        print(f"| {LABELS[label]} | {row['hit1']:.3f} | {row['hit5']:.3f} | {row['mrr10']:.3f} |")
    return table


def print_decisions(measured: Measured) -> None:
    pairs = measured.left_alone
    agree = sum(ours == theirs for ours, theirs in pairs)
    kept = sum(ours for ours, _ in pairs)
    kept_right = sum(ours and theirs for ours, theirs in pairs)
    print(f"\nLeft as asked: {kept} of {len(pairs)} turns ({kept_right} of them also left alone by the assessors, "
          f"who left {sum(t for _, t in pairs)}); agreement {agree / len(pairs):.3f}")
    print(f"Cost per question: standalone query p50 {pct(measured.standalone_ms, 50):.1f} ms, "
          f"p99 {pct(measured.standalone_ms, 99):.1f} ms; its embedding p50 {pct(measured.embed_ms, 50):.1f} ms, "
          f"p99 {pct(measured.embed_ms, 99):.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description="Spotter follow-up question benchmark")
    parser.add_argument("--cast", type=Path, default=DEFAULT_CAST, help="a CAsT topics file, or its folder")
    parser.add_argument("--topics", type=int, default=None, help="only the first N topics (default: all)")
    parser.add_argument("--distractors", type=int, default=None,
                        help="only the first N exercises as distractors (default: all)")
    parser.add_argument("--squad", type=Path, default=DEFAULT_SQUAD, help="SQuAD-format passages as distractors")
    parser.add_argument("--squad-articles", type=int, default=None)
    parser.add_argument("--keep-db", action="store_true", help="keep its database for --reuse-db")
    parser.add_argument("--reuse-db", action="store_true",
                        help="run again on the database a --keep-db run left (no ingestion: for tuning)")
    parser.add_argument("--mask-names", action="store_true",
                        help="let the PII guard's NER and surname lists mask the pipeline's questions (see below)")
    args = parse_args(parser, SMOKE)
    if not args.mask_names:
        # CAsT passages have no titles, so a person they name is not public to the guard: it would mask "Ziegler"
        # in the pipeline's question and in none of the plain searches it is compared with (countries and
        # continents are kept, chat/safety/places.py). Patterns (emails, phones) and the given names still run.
        os.environ.setdefault("PII_NER", "false")
        os.environ.setdefault("PII_NAME_LISTS", "false")
    if args.reuse_db:
        return run_in_kept_database(lambda: run(args))
    return run_in_bench_database(lambda: run(args), name=BENCH_DB, keep_db=args.keep_db)


def run_in_kept_database(run_it) -> int:
    """Django against the database a --keep-db run left, its conversations and answer cache emptied
    (a cached answer from the last run would stand in for this run's)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import psycopg

    url = with_database(os.environ["DATABASE_URL"], BENCH_DB)
    try:
        psycopg.connect(url).close()
    except psycopg.OperationalError:
        print(f"no kept database {BENCH_DB}: run with --keep-db first (any run without it drops the database)")
        return 2
    os.environ["DATABASE_URL"] = url
    import django

    django.setup()
    from chat.models import CacheEntry, Conversation

    CacheEntry.objects.all().delete()
    Conversation.objects.all().delete()
    return run_it()


def ingest(args) -> list[list[Turn]]:
    passages, conversations = load_cast(args.cast, args.topics)
    if args.reuse_db:
        print(f"{cast_file(args.cast).name}: {len(conversations)} topics, kept database (not ingested again)")
        return conversations
    squad_passages = load_squad(args.squad, args.squad_articles)[0]
    print(f"{cast_file(args.cast).name}: {len(conversations)} topics, {sum(map(len, conversations))} turns, "
          f"{len(passages)} passages; distractors: {len(squad_passages)} XQuAD passages and the exercise database")
    began = time.perf_counter()
    ingest_distractors(args.distractors)
    ingest_corpus("xquad-passages", squad_passages)
    ingest_corpus("cast-passages", passages)
    print(f"ingested in {time.perf_counter() - began:.0f} s")
    return conversations


def run(args) -> int:
    from knowledge.models import Chunk, Document

    conversations = ingest(args)
    external_ids = dict(Document.objects.filter(source__name="cast-passages").values_list("pk", "external_id"))
    measured = asyncio.run(run_conversations(conversations, external_ids))
    table = print_table(measured, Chunk.objects.count())
    print_decisions(measured)
    raw, contextual, manual = (table[label]["hit5"] for label in ("raw", "contextual", "manual"))
    gap_closed = (contextual - raw) / (manual - raw) if manual > raw else 0.0
    print(f"\nRESULT raw_hit5={raw:.3f} contextual_hit5={contextual:.3f} manual_hit5={manual:.3f} "
          f"gap_closed={gap_closed:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
