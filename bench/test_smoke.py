"""Every benchmark runs to its RESULT line (at `--smoke` sizes): a benchmark that no longer runs
against the apps' public API fails here, not on the next `make bench`. `make bench-smoke` runs this, and CI
after the suite: benchmark-sized work stays out of `make test` (each benchmark starts a process of its own,
loads the embedding model and builds a database: about three minutes for all of them).

Each runs as `make bench` runs it, in a process of its own, against the suite's embedded
PostgreSQL and Redis (DATABASE_URL, REDIS_URL); each creates and drops its own database there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)
DATA = BASE_DIR.parent / "shared" / "data"

BENCHMARKS = {
    "retrieval": (["hybrid_hit1", "hybrid_hit5", "hybrid_mrr10", "dense_hit1", "dense_hit5", "fts_hit1", "fts_hit5",
                   "p99_ms", "recall10_100k", "p99_ms_100k"],
                  DATA / "squad-v1.1-dev-xquad-en" / "xquad.en.json"),
    "serving": (["overhead_p50_ms", "overhead_p99_ms", "tokens_per_s", "cpu_ratio", "burst_overhead_p50_ms",
                 "burst_overhead_p99_ms", "record_p99_ms", "record_added_p99_ms",
                 "assignment_added_p99_ms"], None),
    "cache": (["precision", "hit_rate", "naive_precision_at_same_hit_rate", "lookup_p99_ms_100k",
               "scan_speedup_100k"], DATA / "banking77" / "train.csv"),
    "context": (["context_share_turn30", "facts_reachable"], None),
    "calibration": (["brier_predictor", "brier_heuristic", "ece_predictor", "ece_heuristic"],
                    DATA / "squad-v1.1-dev-xquad-en" / "xquad.en.json"),
    "learning": (["coverage_learning", "coverage_random", "coverage_confidence", "coverage_arrival", "precision"],
                 DATA / "banking77" / "train.csv"),
    "drift": (["false_alarms", "detect_10pct_within5", "detect_20pct_within2", "delay_windows_10pct", "cluster_purity"],
              DATA / "banking77" / "train.csv"),
    "dashboard": (["rollup_p95_ms", "raw_p95_ms"], None),
    "offline_answers": (["answer_in_first2", "baseline_answer_in_first2", "mean_words", "retrieved_share"],
                        DATA / "squad-v1.1-dev-xquad-en" / "xquad.en.json"),
    "conversation": (["raw_hit5", "contextual_hit5", "manual_hit5", "gap_closed"], DATA / "trec-cast-2021-a"),
    "safety": (["injection_recall", "benign_false_alarm", "pii_recall_structured", "pii_recall_names",
                "moderation_recall", "moderation_false_flag", "guard_p99_ms"],
               DATA / "pii-presidio-synth" / "synth_dataset_v2.json"),
    "experiments": (["aa_false_positive", "naive_aa_false_positive", "power_5pt", "median_answers_to_decision"], None),
}


def result_fields(stdout: str) -> dict[str, str]:
    line = next(line for line in stdout.splitlines() if line.startswith("RESULT "))
    return dict(field.split("=", 1) for field in line.removeprefix("RESULT ").split())


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_benchmark_runs_to_its_result_line(name):
    keys, data = BENCHMARKS[name]
    if data is not None and not data.exists():
        pytest.skip(f"{data} is not on this machine")
    result = subprocess.run(
        [sys.executable, f"bench/{name}.py", "--smoke"], cwd=BASE_DIR, env=dict(os.environ),
        capture_output=True, text=True, timeout=150,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert list(result_fields(result.stdout)) == keys
