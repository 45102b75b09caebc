"""Dashboard benchmark: how long the dashboard's queries take for each time range over a large history,
read from the rollups (what the dashboard does) against the same figures computed from the raw facts.

1,000,000 synthetic answer facts spread over 30 days (several languages, prompt versions, models; some
failed, reused, thumbs) are written through the real models (bulk), their rollups built by the real
rebuild, then each range is read N times both ways. The raw side computes the same per-bin sums and
percentiles with SQL over `monitoring_answerfact` (percentile_cont instead of histograms).

    python -m config.stack exec -- python bench/dashboard.py [--facts N] [--repeats N] [--smoke]

Ends with `RESULT rollup_p95_ms=… raw_p95_ms=…` (the worst range's p95 for each)."""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from datetime import timedelta
from decimal import Decimal

from common import parse_args, pct, run_in_bench_database

DB = "spotter_bench_dashboard"
SMOKE = {"facts": 5000, "repeats": 3}
TARGET_P95_MS = 100.0
BATCH = 10_000


def synthesize(total: int, seed: int) -> None:
    """Facts spread evenly over the last 30 days, a daily rhythm in their latency and some failures."""
    from django.utils import timezone

    from monitoring.models import AnswerFact

    rng = random.Random(seed)
    now = timezone.now()
    # auto_now_add would stamp every fact "now"; a history needs the past, so the bench gives each its time
    AnswerFact._meta.get_field("created_at").auto_now_add = False
    span = timedelta(days=30).total_seconds()
    languages, models = ["en", "en", "en", "de", "fr"], ["gpt-4o-mini", "gpt-4o-mini", "ft:coach-1"]
    written = 0
    while written < total:
        batch = []
        for _ in range(min(BATCH, total - written)):
            failed = rng.random() < 0.02
            reuse = "none" if failed else rng.choices(["none", "cache", "approved"], [6, 3, 1])[0]
            latency = int(rng.lognormvariate(6.5, 0.7))
            batch.append(AnswerFact(
                message_id=uuid.uuid4(), conversation_id=uuid.uuid4(), status="failed" if failed else "complete",
                model="" if reuse != "none" else rng.choice(models), prompt_version_id=rng.choice([1, 2, 3]),
                reuse=reuse, confidence=None if failed else rng.random(), latency_ms=latency,
                ttft_ms=int(latency * rng.uniform(0.1, 0.4)), tokens_in=rng.randint(300, 2500),
                tokens_out=rng.randint(20, 400), cost=Decimal(rng.randint(10, 3000)) / 10**6,
                language=rng.choice(languages), feedback=rng.choices(["", "up", "down"], [90, 7, 3])[0],
                created_at=now - timedelta(seconds=rng.uniform(0, span)),
            ))
        AnswerFact.objects.bulk_create(batch)
        written += len(batch)
        print(f"\r{written:,} facts written", end="", flush=True)
    print()


def raw_dashboard(range_name: str) -> list[tuple]:
    """The dashboard's figures per bin computed from the raw facts: what it would cost without rollups."""
    from django.db import connection
    from django.utils import timezone

    from monitoring.dashboard import RANGES

    window = RANGES[range_name]
    until = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT date_bin(%s, created_at, TIMESTAMPTZ '2000-01-03') AS t, count(*),"
            " count(*) FILTER (WHERE status <> 'complete'), count(*) FILTER (WHERE reuse <> 'none'),"
            " sum(cost), sum(cost_avoided), count(*) FILTER (WHERE feedback = 'up'),"
            " count(*) FILTER (WHERE feedback = 'down'), count(*) FILTER (WHERE confidence < 0.5),"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms),"
            " percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms),"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY ttft_ms),"
            " percentile_cont(0.95) WITHIN GROUP (ORDER BY ttft_ms)"
            " FROM monitoring_answerfact WHERE created_at >= %s AND created_at < %s GROUP BY t ORDER BY t",
            [window.step, until - window.span, until])
        rows = cursor.fetchall()
        cursor.execute("SELECT date_bin(%s, created_at, TIMESTAMPTZ '2000-01-03') AS t, model, sum(cost)"
                       " FROM monitoring_answerfact WHERE created_at >= %s AND created_at < %s AND cost > 0"
                       " GROUP BY t, model", [window.step, until - window.span, until])
        return rows + cursor.fetchall()


def timed(work, repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        began = time.perf_counter()
        work()
        samples.append(1000 * (time.perf_counter() - began))
    return samples


def run(args) -> int:
    from django.db import connection
    from django.utils import timezone

    from monitoring.dashboard import RANGES, dashboard_data
    from monitoring.models import AnswerRollup
    from monitoring.rollups import rollups_rebuild

    began = time.perf_counter()
    synthesize(args.facts, args.seed)
    print(f"{args.facts:,} facts in {time.perf_counter() - began:.0f} s")
    began = time.perf_counter()
    rollups_rebuild(since=timezone.now() - timedelta(days=31), until=timezone.now(), through_today=True)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE monitoring_answerfact")
        cursor.execute("VACUUM ANALYZE monitoring_answerrollup")
    print(f"rollups rebuilt in {time.perf_counter() - began:.0f} s: "
          f"{AnswerRollup.objects.filter(granularity='minute').count():,} minute rows, "
          f"{AnswerRollup.objects.filter(granularity='hour').count():,} hour rows")

    print("\n| range | bins | rollups p50 ms | rollups p95 ms | raw facts p50 ms | raw facts p95 ms | speed-up |")
    print("|---|---|---|---|---|---|---|")
    worst_rollup, worst_raw = 0.0, 0.0
    for name, window in RANGES.items():
        dashboard_data(range_name=name, filters={})  # a warm cache, as a dashboard polled every few seconds has
        rollup = timed(lambda n=name: dashboard_data(range_name=n, filters={}), args.repeats)
        raw = timed(lambda n=name: raw_dashboard(n), args.repeats)
        worst_rollup, worst_raw = max(worst_rollup, pct(rollup, 95)), max(worst_raw, pct(raw, 95))
        print(f"| {name} | {int(window.span / window.step)} | {pct(rollup, 50):.1f} | {pct(rollup, 95):.1f} | "
              f"{pct(raw, 50):.1f} | {pct(raw, 95):.1f} | {pct(raw, 50) / max(pct(rollup, 50), 0.01):.0f}× |")
    met = worst_rollup <= TARGET_P95_MS
    print(f"\nTarget: every range's p95 on the rollups ≤ {TARGET_P95_MS:.0f} ms: {'met' if met else 'NOT met'}")
    print(f"\nRESULT rollup_p95_ms={worst_rollup:.1f} raw_p95_ms={worst_raw:.1f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Spotter dashboard benchmark (rollups against raw facts)")
    parser.add_argument("--facts", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=20, help="reads of each range, each way")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep-db", action="store_true")
    args = parse_args(parser, SMOKE)
    return run_in_bench_database(lambda: run(args), name=DB, keep_db=args.keep_db)


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.exit(main())
