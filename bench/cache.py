"""Answer-cache precision and speed: the naive threshold design against the precision guard.

The cache is filled through the project's own code (`chat.reuse.services.entry_store`) with the
train questions, each answered by its intent label; every test question is then looked up through
`chat.reuse.selectors.lookup`. A hit is correct when the served answer is the question's own
intent. The guard's thresholds are calibrated on the train questions alone (leave-one-out,
`chat.reuse.calibration`, what `manage.py cache_calibrate --file` runs), never on the test
questions.

Then lookup latency (embedding excluded) at 10k and 100k entries (synthetic entries around the
real ones), against the design where every lookup reads every cached vector from Redis and
compares them all.

    make bench
    python bench/cache.py --train FILE --test FILE [--target 0.995] [--no-scale]
    python bench/cache.py --smoke    # tiny sizes: checks that it runs, measures nothing

Runs in its own database (spotter_bench_cache, dropped afterwards). Ends with `RESULT precision=…
hit_rate=… naive_precision_at_same_hit_rate=… lookup_p99_ms_100k=… scan_speedup_100k=…`.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from decimal import Decimal
from pathlib import Path

from common import ROOT, parse_args, pct, run_in_bench_database

DB = "spotter_bench_cache"
DATA = ROOT.parent / "shared" / "data" / "banking77"
NAIVE_THRESHOLDS = (0.80, 0.85, 0.88, 0.90, 0.92, 0.95)
SCAN_KEY = "spotter:bench:scan"
SMOKE = {"rows": 150, "scale_entries_small": 500, "scale_entries": 1000, "latency_queries": 20, "scan_queries": 5}


def load(path: Path, rows: int | None = None) -> tuple[list[str], list[str]]:
    """(texts, labels); at most `rows` of them, taken evenly across the file (so most intents stay)."""
    with path.open(newline="", encoding="utf-8") as handle:
        records = [r for r in csv.DictReader(handle) if r["text"].strip()]
    if rows is not None and rows < len(records):
        records = [records[i * len(records) // rows] for i in range(rows)]
    return [r["text"] for r in records], [r["category"] for r in records]


def table(rows: list[tuple], header: tuple) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" + "---:|" * (len(header) - 1))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")


def score(answers: list[str | None], labels: list[str]) -> tuple[float, float, float]:
    """(hit rate, precision, wrong answers per 1,000 questions)."""
    hits = [(a, lab) for a, lab in zip(answers, labels, strict=True) if a is not None]
    wrong = sum(a != lab for a, lab in hits)
    precision = (len(hits) - wrong) / len(hits) if hits else 1.0
    return len(hits) / len(labels), precision, 1000 * wrong / len(labels)


def fill(scope, texts, labels, vectors) -> None:
    """Each train question stored as the pipeline stores an answer (its index grows entry by entry)."""
    from chat.reuse.services import Answered, entry_store
    from knowledge.embeddings import QueryVector

    for text, label, vector in zip(texts, labels, vectors, strict=True):
        entry_store(
            scope=scope, vector=QueryVector(scope.space_id, scope.dimensions, list(map(float, vector))),
            answered=Answered(
                question=text, text=label, sources=[], chunk_ids=[], document_ids=[], confidence=1.0, model="",
                tokens_in=0, tokens_out=0, cost=Decimal(0), message_id=None,  # no chat message behind it
            ),
        )


def grow(scope, vectors, total: int, seed: int = 11) -> None:
    """Synthetic entries up to `total`: each between two real questions' vectors (60-95 % the first)
    plus noise, so they spread over the region real questions occupy. The index is rebuilt after."""
    import numpy as np
    from django.db import connection

    from chat.models import CacheEntry
    from chat.reuse.services import index_ensure, index_name, indexes_forget

    needed = total - CacheEntry.objects.count()
    if needed <= 0:
        return
    rng = np.random.default_rng(seed)
    with connection.cursor() as cursor:
        # Bulk load: the index is built once afterwards instead of grown entry by entry.
        cursor.execute(f"DROP INDEX IF EXISTS {index_name(scope.space_id)}")
        indexes_forget()
        columns = ("question, question_hash, answer, answer_key, sources, chunk_ids, document_ids, space_id, "
                   "embedding, kb_version, language, visitor_id, profile_hash, model, tokens_in, tokens_out, cost, "
                   "created_at, hits, blocked_reason")
        with cursor.copy(f"COPY chat_cacheentry ({columns}) FROM STDIN") as copy:
            for n in range(needed):
                a, b = rng.integers(0, len(vectors), 2)
                share = rng.uniform(0.6, 0.95)
                v = share * vectors[a] + (1 - share) * vectors[b] + rng.normal(0, 0.01, vectors.shape[1])
                v /= np.linalg.norm(v)
                copy.write_row((
                    f"synthetic {n}", f"synthetic-{n}", f"synthetic {n % 500}", f"synthetic-{n % 500}", "[]", "{}",
                    "{}", scope.space_id, "[" + ",".join(f"{x:.6f}" for x in v) + "]", scope.kb_version,
                    scope.language, "", "", "", 0, 0, 0, "now", 0, "",
                ))
        cursor.execute("ANALYZE chat_cacheentry; SET maintenance_work_mem = '1GB'")
    index_ensure(scope.space_id, scope.dimensions)


def lookup_latency(scope, texts, vectors) -> list[float]:
    from chat.reuse.selectors import lookup
    from knowledge.embeddings import QueryVector

    samples = []
    for text, vector in zip(texts, vectors, strict=True):
        query = QueryVector(scope.space_id, scope.dimensions, list(map(float, vector)))
        began = time.perf_counter()
        lookup(scope, text, query)
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def scan_latency(queries) -> list[float]:
    """The naive design's lookup: read every cached vector from Redis, compare with all of them."""
    import numpy as np
    import redis
    from django.conf import settings
    from django.db import connection

    client = redis.Redis.from_url(settings.CACHE_REDIS_URL)
    client.delete(SCAN_KEY)
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, embedding::text FROM chat_cacheentry")
        pipe = client.pipeline(transaction=False)
        for n, (pk, text) in enumerate(cursor):
            pipe.hset(SCAN_KEY, pk, np.array(text[1:-1].split(","), dtype=np.float32).tobytes())
            if n % 5000 == 4999:
                pipe.execute()
        pipe.execute()
    samples = []
    for query in queries:
        began = time.perf_counter()
        stored = client.hgetall(SCAN_KEY)
        matrix = np.frombuffer(b"".join(stored.values()), dtype=np.float32).reshape(len(stored), -1)
        int(np.argmax(matrix @ query))
        samples.append((time.perf_counter() - began) * 1000)
    client.delete(SCAN_KEY)
    return samples


def run(args) -> int:
    import numpy as np
    from django.conf import settings

    from chat.models import CacheCalibration
    from chat.reuse.calibration import calibrate, leave_one_out
    from chat.reuse.guard import LEXICAL_CHECKS, decide
    from chat.reuse.scope import Scope
    from chat.reuse.selectors import forget_guard_params, lookup, neighbours
    from knowledge.embeddings import QueryVector, embed_texts
    from knowledge.services import embedding_space_ensure

    train_texts, train_labels = load(args.train, args.rows)
    test_texts, test_labels = load(args.test, args.rows)
    began = time.perf_counter()
    train = np.array(embed_texts(train_texts), dtype=np.float32)
    test = np.array(embed_texts(test_texts), dtype=np.float32)
    print(f"{args.train.name}: {len(train_texts)} questions cached, {args.test.name}: {len(test_texts)} looked up "
          f"({len(set(train_labels))} answers); embedded in {time.perf_counter() - began:.0f} s")

    observations = leave_one_out(train, train_texts, train_labels)
    calibrated = calibrate(observations, args.target)
    print(f"calibrated on the train questions (leave-one-out) for precision {args.target}: "
          f"{calibrated.params.as_dict()} (train precision {calibrated.precision:.4f}, hit rate "
          f"{calibrated.hit_rate:.3f})")
    CacheCalibration.objects.create(
        params=calibrated.params.as_dict(), target_precision=args.target, precision=calibrated.precision,
        hit_rate=calibrated.hit_rate, labelled=calibrated.labelled, source=str(args.train),
    )
    forget_guard_params()

    space = embedding_space_ensure()  # nothing is ingested here: the cache needs a space all the same
    scope = Scope(space.pk, space.dimensions, None, 1, "en")
    fill(scope, train_texts, train_labels, train)
    queries = [QueryVector(scope.space_id, scope.dimensions, list(map(float, v))) for v in test]

    ours = []
    for text, query in zip(test_texts, queries, strict=True):
        hit = lookup(scope, text, query)
        ours.append(hit.entry.answer if hit else None)
    nearest = [neighbours(scope, q, calibrated.params.neighbours) for q in queries]

    rows, naive = [], {}
    for threshold in NAIVE_THRESHOLDS:
        answers = [n[0].answer_key if n and n[0].similarity >= threshold else None for n in nearest]
        naive[threshold] = score([a and _label(a, train_labels) for a in answers], test_labels)
    for threshold, (hit_rate, precision, wrong) in naive.items():
        rows.append((f"naive: nearest above cosine {threshold:.2f}", f"{hit_rate:.3f}", f"{precision:.4f}",
                     f"{wrong:.1f}"))
    variants = {
        "guard: agreement only": (),
        **{f"guard: agreement + {check}": (check,) for check in LEXICAL_CHECKS},
        "guard: agreement + all lexical checks": LEXICAL_CHECKS,
    }
    for name, checks in variants.items():
        answers = []
        for text, near in zip(test_texts, nearest, strict=True):
            decision = decide(text, near, calibrated.params, checks)
            answers.append(_label(decision.neighbour.answer_key, train_labels) if decision.accepted else None)
        hit_rate, precision, wrong = score(answers, test_labels)
        rows.append((name, f"{hit_rate:.3f}", f"{precision:.4f}", f"{wrong:.1f}"))
    hit_rate, precision, wrong = score(ours, test_labels)
    rows.append(("**ours: `chat.reuse.selectors.lookup` (exact + guard)**", f"**{hit_rate:.3f}**",
                 f"**{precision:.4f}**", f"**{wrong:.1f}**"))
    print(f"\nCache hits on {len(test_texts)} test questions ({len(train_texts)} cached)\n")
    table(rows, ("design", "hit rate", "precision", "wrong per 1,000"))

    # The naive threshold that serves as many questions as ours, and its precision there.
    matched = min(naive.items(), key=lambda item: abs(item[1][0] - hit_rate))
    print(f"\nnaive design at the nearest hit rate (threshold {matched[0]:.2f}): hit rate {matched[1][0]:.3f}, "
          f"precision {matched[1][1]:.4f}")
    fields = {"precision": precision, "hit_rate": hit_rate, "naive_precision_at_same_hit_rate": matched[1][1]}

    if not args.no_scale:
        sample = list(range(0, len(test_texts), max(1, len(test_texts) // args.latency_queries)))
        rows = []
        for total in (args.scale_entries_small, args.scale_entries):
            grow(scope, train, total)
            lookups = lookup_latency(scope, [test_texts[i] for i in sample], [test[i] for i in sample])
            scans = scan_latency([test[i] for i in sample[: args.scan_queries]])
            speedup = pct(scans, 50) / pct(lookups, 50)
            rows.append((f"{total:,}", f"{pct(lookups, 50):.2f}", f"{pct(lookups, 99):.2f}", f"{pct(scans, 50):.0f}",
                         f"{pct(scans, 99):.0f}", f"{speedup:.0f}×"))
            fields.update({"lookup_p99_ms_100k": pct(lookups, 99), "scan_speedup_100k": speedup})
        print(f"\nLookup latency, embedding excluded (HNSW m={settings.CACHE_HNSW_M}, "
              f"ef_construction={settings.CACHE_HNSW_EF_CONSTRUCTION}, ef_search={settings.CACHE_HNSW_EF_SEARCH}; "
              "scan = every vector read from Redis and compared)\n")
        table(rows, ("entries", "lookup p50 ms", "lookup p99 ms", "scan p50 ms", "scan p99 ms", "speedup (p50)"))
    _forget_bench_keys(scope)
    print("\nRESULT " + " ".join(f"{k}={v:.4f}" if "ms" not in k and "speedup" not in k else f"{k}={v:.1f}"
                                 for k, v in fields.items()))
    return 0


def _forget_bench_keys(scope) -> None:
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.CACHE_REDIS_URL)
    for key in client.scan_iter(f"spotter:answers:{scope.key()}:*", count=1000):
        client.delete(key)


_KEYS: dict[str, str] = {}


def _label(answer_key: str, labels: list[str]) -> str:
    """The intent whose answer key this is (answers are the labels themselves)."""
    if not _KEYS:
        from chat.reuse.scope import answer_key

        _KEYS.update({answer_key(label, []): label for label in set(labels)})
    return _KEYS.get(answer_key, answer_key)


def main() -> int:
    parser = argparse.ArgumentParser(description="Spotter answer-cache benchmark")
    parser.add_argument("--train", type=Path, default=DATA / "train.csv", help="CSV text,category: cached")
    parser.add_argument("--test", type=Path, default=DATA / "test.csv", help="CSV text,category: looked up")
    parser.add_argument("--target", type=float, default=0.995, help="precision the calibration aims for")
    parser.add_argument("--no-scale", action="store_true", help="skip the 10k/100k latency part")
    parser.add_argument("--rows", type=int, default=None,
                        help="at most N questions from each file, taken evenly across it (default: all)")
    parser.add_argument("--scale-entries-small", type=int, default=10_000, help="the first latency level")
    parser.add_argument("--scale-entries", type=int, default=100_000, help="the second latency level")
    parser.add_argument("--latency-queries", type=int, default=500)
    parser.add_argument("--scan-queries", type=int, default=20)
    parser.add_argument("--keep-db", action="store_true")
    args = parse_args(parser, SMOKE)
    return run_in_bench_database(lambda: run(args), name=DB, keep_db=args.keep_db)

if __name__ == "__main__":
    sys.exit(main())
