"""Retrieval quality and speed: dense, full-text and hybrid search on SQuAD-format data.

Each passage of the SQuAD file becomes a document ingested through the project's own ingestion
(a JSON file with a field mapping, the chunker, the embedder) beside the exercise database as
distractors; every question is then asked through the project's own search. A question is found
at k when a chunk among the top k contains its answer text. A second corpus joins the passages of
each article into one long document, so that chunking matters. At scale, the index is grown to
100,000 chunks (copies of the real chunks' text, their vectors perturbed) to measure HNSW recall
against exact search and latency.

    make bench                                       # runs this under the embedded Postgres
    python bench/retrieval.py --squad FILE [--no-scale] [--scale-chunks 100000]
    python bench/retrieval.py --smoke                # tiny sizes: checks that it runs, measures nothing

Runs in its own database (spotter_bench, dropped afterwards). Prints its tables and ends with
`RESULT hybrid_hit1=… hybrid_hit5=… hybrid_mrr10=… dense_hit1=… dense_hit5=… fts_hit1=… fts_hit5=…
p99_ms=… recall10_100k=… p99_ms_100k=…`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from common import EXERCISES_MAPPING, ROOT, exercises_file, parse_args, pct, run_in_bench_database

DEFAULT_SQUAD = ROOT.parent / "shared" / "data" / "squad-v1.1-dev-xquad-en" / "xquad.en.json"
SMOKE = {"articles": 1, "distractors": 10, "scale_chunks": 1000, "recall_queries": 10}


@dataclass(frozen=True)
class Question:
    text: str
    answer: str


def load_squad(path: Path, articles: int | None = None) -> tuple[list[dict], list[dict], list[Question]]:
    """(passage records, article records, questions) from a SQuAD v1.1 file (its first `articles`)."""
    data = json.loads(path.read_text())["data"][:articles]
    passages, articles, questions = [], [], []
    for a, article in enumerate(data):
        title = article["title"].replace("_", " ")
        contexts = []
        for p, paragraph in enumerate(article["paragraphs"]):
            passages.append({"id": f"{a}-{p}", "title": title, "context": paragraph["context"]})
            contexts.append(paragraph["context"])
            questions.extend(Question(qa["question"], qa["answers"][0]["text"]) for qa in paragraph["qas"])
        articles.append({"id": str(a), "title": title, "context": "\n\n".join(contexts)})
    return passages, articles, questions


def ingest_corpus(name: str, records: list[dict]) -> None:
    from knowledge import services

    mapping = {"id": "id", "title": "title", "body": ["context"]}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(records, handle)
    try:
        source = services.source_upsert(name=name, uri=handle.name, mapping=mapping)
        services.source_ingest(source_id=source.pk)
    finally:
        os.unlink(handle.name)


def ingest_distractors(limit: int | None = None) -> None:
    """The exercise database (or its first `limit` exercises) as a knowledge source."""
    from knowledge import services

    mapping = json.loads(EXERCISES_MAPPING.read_text())
    with exercises_file(limit) as path:
        source = services.source_upsert(name="exercises", uri=str(path), mapping=mapping)
        services.source_ingest(source_id=source.pk)


# --- quality --------------------------------------------------------------------------------------


def rank_of_answer(hits, answer: str) -> int | None:
    for rank, hit in enumerate(hits, 1):
        if answer in hit.text:
            return rank
    return None


def quality(questions: list[Question], vectors, runs: dict[str, dict]) -> dict[str, dict[str, float]]:
    """hit@1, hit@5 and MRR@10 of each configuration, over every question."""
    from knowledge.selectors import search

    results = {}
    for label, options in runs.items():
        ranks = []
        for question, vector in zip(questions, vectors, strict=True):
            hits = search(query=question.text, vector=vector, k=10, min_score=0.0, **options)
            ranks.append(rank_of_answer(hits, question.answer))
        results[label] = {
            "hit1": sum(r == 1 for r in ranks) / len(ranks),
            "hit5": sum(r is not None and r <= 5 for r in ranks) / len(ranks),
            "mrr10": sum(1 / r for r in ranks if r) / len(ranks),
        }
    return results


def latency(questions: list[Question], runs: int = 1) -> list[float]:
    """Milliseconds per hybrid search, the query embedding included, one question at a time (the
    embedding computed while the full-text side runs, as the answer pipeline does)."""
    return asyncio.run(_latency(questions, runs))


async def _latency(questions: list[Question], runs: int) -> list[float]:
    from django.db import connections

    from knowledge.embeddings import aembed_query
    from knowledge.selectors import search, search_full_text

    loop = asyncio.get_running_loop()
    # One database thread, so every search reuses one connection, as the pipeline's pool does.
    with ThreadPoolExecutor(1, thread_name_prefix="bench-db") as db:
        async def hybrid(text: str) -> None:
            vector, full_text = await asyncio.gather(
                aembed_query(text), loop.run_in_executor(db, partial(search_full_text, text, k=10))
            )
            await loop.run_in_executor(db, partial(search, query=text, vector=vector, k=10, full_text=full_text))

        await hybrid(questions[0].text)  # warm-up, unmeasured
        samples = []
        for _ in range(runs):
            for question in questions:
                began = time.perf_counter()
                await hybrid(question.text)
                samples.append((time.perf_counter() - began) * 1000)
        await loop.run_in_executor(db, connections.close_all)
    return samples


# --- scale ----------------------------------------------------------------------------------------


def grow_to(total_chunks: int, seed: int = 7) -> float:
    """Add synthetic chunks until the index holds total_chunks; returns the index build seconds.

    Each one takes a real chunk's text (so full-text statistics stay realistic) and a vector between
    that chunk's and another random chunk's (50-90 % the former, plus a little noise, renormalised):
    new points spread over the region real content occupies, not piles of near-copies whose order is
    a coin toss.
    """
    import numpy as np
    from django.db import connection

    from knowledge.models import Chunk, Document, EmbeddingSpace, Source
    from knowledge.selectors import embedding_space_active
    from knowledge.services import lexeme_stats_refresh, space_index_create

    space = embedding_space_active()
    real = list(Chunk.objects.values_list("pk", "text", "heading", "token_count", "search_vector"))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT chunk_id, embedding::text FROM knowledge_chunkembedding WHERE space_id = {space.pk}")
        vectors = {pk: np.array(json.loads(v), dtype=np.float32) for pk, v in cursor.fetchall()}
    needed = total_chunks - len(real)
    if needed <= 0:
        return 0.0
    source = Source.objects.create(name="synthetic", status=Source.Status.READY)
    document = Document.objects.create(source=source, external_id="synthetic", title="synthetic", content="",
                                       content_hash="")
    rng = np.random.default_rng(seed)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {EmbeddingSpace.objects.get(pk=space.pk).index_name}")
        for start in range(0, needed, 5000):
            batch = [real[i] for i in rng.integers(0, len(real), min(5000, needed - start))]
            with cursor.copy(
                "COPY knowledge_chunk (document_id, ordinal, heading, text, token_count, created_at) FROM STDIN"
            ) as copy:
                for offset, (_, text, heading, tokens, _) in enumerate(batch):
                    copy.write_row((document.pk, start + offset, heading, text, tokens, "now"))
            cursor.execute(
                "SELECT id FROM knowledge_chunk WHERE document_id = %s AND ordinal >= %s ORDER BY ordinal",
                [document.pk, start],
            )
            ids = [row[0] for row in cursor.fetchall()]
            with cursor.copy("COPY knowledge_chunkembedding (space_id, chunk_id, embedding) FROM STDIN") as copy:
                partners = rng.integers(0, len(real), len(batch))
                shares = rng.uniform(0.5, 0.9, len(batch))
                for chunk_id, (pk, *_rest), partner, share in zip(ids, batch, partners, shares, strict=True):
                    other = vectors[real[partner][0]]
                    v = share * vectors[pk] + (1 - share) * other + rng.normal(0, 0.01, other.shape).astype(np.float32)
                    v /= np.linalg.norm(v)
                    copy.write_row((space.pk, chunk_id, "[" + ",".join(f"{x:.6f}" for x in v) + "]"))
        cursor.execute(
            "UPDATE knowledge_chunk c SET search_vector = r.search_vector FROM knowledge_chunk r "
            "WHERE c.document_id = %s AND r.document_id <> %s AND r.text = c.text AND r.heading = c.heading",
            [document.pk, document.pk],
        )
        cursor.execute("ANALYZE knowledge_chunk; ANALYZE knowledge_chunkembedding")
        lexeme_stats_refresh()
        cursor.execute("SET maintenance_work_mem = '1GB'")
        began = time.perf_counter()
        space_index_create(space)
        return time.perf_counter() - began


def recall_at_10(questions: list[Question], vectors) -> float:
    """Share of the exact top 10 that the HNSW index returns: the same dense search twice, the
    second with index scans off, so PostgreSQL compares the query with every vector (bitmap scans
    stay on for the rest of the statement: HNSW cannot serve one)."""
    from django.db import connection, transaction

    from knowledge.selectors import search

    def dense_top10(question: Question, vector) -> set[int]:
        hits = search(query=question.text, vector=vector, k=10, min_score=0.0, mode="dense")
        return {hit.chunk_id for hit in hits}

    found = total = 0
    for question, vector in zip(questions, vectors, strict=True):
        approximate = dense_top10(question, vector)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_indexscan = off")
            exact = dense_top10(question, vector)
        found += len(exact & approximate)
        total += len(exact)
    return found / total


# --- report ---------------------------------------------------------------------------------------


RUNS = {
    "dense": {"mode": "dense"},
    "full-text": {"mode": "lexical"},
    "hybrid (RRF)": {"mode": "hybrid", "fusion": "rrf"},
    "hybrid (weighted)": {"mode": "hybrid", "fusion": "weighted"},
}


def print_quality(title: str, chunks: int, table: dict[str, dict[str, float]]) -> None:
    print(f"\n{title} ({chunks} chunks in the index)\n")
    print("| retriever | hit@1 | hit@5 | MRR@10 |")
    print("|---|---:|---:|---:|")
    for label, row in table.items():
        print(f"| {label} | {row['hit1']:.3f} | {row['hit5']:.3f} | {row['mrr10']:.3f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description="Spotter retrieval benchmark")
    parser.add_argument("--squad", type=Path, default=DEFAULT_SQUAD, help="a file in SQuAD v1.1 format")
    parser.add_argument("--articles", type=int, default=None, help="only the file's first N articles (default: all)")
    parser.add_argument("--distractors", type=int, default=None,
                        help="only the first N exercises as distractors (default: all)")
    parser.add_argument("--no-scale", action="store_true", help="skip the 100k-chunk part")
    parser.add_argument("--scale-chunks", type=int, default=100_000)
    parser.add_argument("--recall-queries", type=int, default=300)
    parser.add_argument("--keep-db", action="store_true")
    args = parse_args(parser, SMOKE)

    def run_with_settings() -> int:
        from django.conf import settings

        return run(args, settings)

    return run_in_bench_database(run_with_settings, keep_db=args.keep_db)


def run(args, settings) -> int:
    from knowledge import services
    from knowledge.embeddings import QueryVector, active_space_ref, embed_texts
    from knowledge.models import Chunk, Source

    passages, articles, questions = load_squad(args.squad, args.articles)
    print(f"{args.squad.name}: {len(passages)} passages, {len(articles)} articles, {len(questions)} questions; "
          f"chunks of {settings.KNOWLEDGE_CHUNK_TOKENS} tokens (overlap {settings.KNOWLEDGE_CHUNK_OVERLAP_TOKENS}), "
          f"{settings.KNOWLEDGE_CANDIDATES} candidates per retriever, RRF k={settings.KNOWLEDGE_RRF_K}, "
          f"ef_search={settings.KNOWLEDGE_HNSW_EF_SEARCH}")
    began = time.perf_counter()
    ingest_distractors(args.distractors)
    ingest_corpus("squad-passages", passages)
    print(f"ingested in {time.perf_counter() - began:.0f} s")
    ref = active_space_ref()
    vectors = [QueryVector(ref.space_id, ref.spec.dimensions, v) for v in embed_texts([q.text for q in questions])]

    results = {"squad-passages": quality(questions, vectors, RUNS)}
    print_quality("Passages as documents", Chunk.objects.count(), results["squad-passages"])
    samples = latency(questions)
    print(f"\nHybrid search latency, query embedding included ({Chunk.objects.count()} chunks, {len(samples)} "
          f"queries): p50 {pct(samples, 50):.1f} ms, p99 {pct(samples, 99):.1f} ms")

    # The same text as one long document per article: the chunker decides what a hit can be.
    services.source_delete(source=Source.objects.get(name="squad-passages"))
    ingest_corpus("squad-articles", articles)
    results["squad-articles"] = quality(questions, vectors, RUNS)
    print_quality("Articles as long documents", Chunk.objects.count(), results["squad-articles"])

    main_table = results["squad-passages"]
    fusion = "hybrid (RRF)" if settings.KNOWLEDGE_FUSION == "rrf" else "hybrid (weighted)"
    fields = {
        "hybrid_hit1": main_table[fusion]["hit1"], "hybrid_hit5": main_table[fusion]["hit5"],
        "hybrid_mrr10": main_table[fusion]["mrr10"], "dense_hit1": main_table["dense"]["hit1"],
        "dense_hit5": main_table["dense"]["hit5"], "fts_hit1": main_table["full-text"]["hit1"],
        "fts_hit5": main_table["full-text"]["hit5"], "p99_ms": pct(samples, 99),
    }
    if not args.no_scale:
        build_s = grow_to(args.scale_chunks)
        sample = random.Random(3).sample(range(len(questions)), min(args.recall_queries, len(questions)))
        recall = recall_at_10([questions[i] for i in sample], [vectors[i] for i in sample])
        big = latency([questions[i] for i in sample], runs=2)
        print(f"\nAt scale: {Chunk.objects.count()} chunks, HNSW (m={settings.KNOWLEDGE_HNSW_M}, "
              f"ef_construction={settings.KNOWLEDGE_HNSW_EF_CONSTRUCTION}) built in {build_s:.0f} s\n")
        print("| measure | value |")
        print("|---|---:|")
        print(f"| HNSW recall@10 vs exact (ef_search={settings.KNOWLEDGE_HNSW_EF_SEARCH}) | {recall:.3f} |")
        print(f"| hybrid search p50 ms (embedding included) | {pct(big, 50):.1f} |")
        print(f"| hybrid search p99 ms (embedding included) | {pct(big, 99):.1f} |")
        fields.update(recall10_100k=recall, p99_ms_100k=pct(big, 99))
    print("\nRESULT " + " ".join(f"{k}={v:.3f}" if "ms" not in k else f"{k}={v:.1f}" for k, v in fields.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
