"""Active learning: how much of the next questions a trainer's budget of approvals answers, by ranking.

The training file's questions arrive (in a seeded random order, one visitor each) and are answered
through the project's own pipeline, offline, with no knowledge base that could answer them, so every
answer is queued for review; the beat job's recompute then groups and ranks the queue. Every ranking
orders that same queue (near-duplicates grouped under one item). A simulated trainer approves the top
items of each ranking with the category's one canonical answer (claim, take out of the item's group any
question of another category, edit and approve, through review's services): the learning value, `1 -
confidence` alone, arrival order, and random (the mean of five seeds). After each budget the test file's
questions are replayed through the real reuse path (approved answers; the answer cache is off). Coverage
is the share of test questions answered by an approved answer; precision the share of those answered with
their own category's answer. A test question of a category without an approved answer (or of a category
the training file lacks) counts against precision whenever an approved answer is served to it.

    make bench                                      # runs this under the embedded Postgres
    python bench/learning.py [--train CSV] [--test CSV] [--budget N ...] [--arrivals N]
    python bench/learning.py --smoke                # tiny sizes: checks that it runs, measures nothing

Files have the columns `text,category` (default: BANKING77 in ../shared/data/banking77/, CC BY 4.0,
Casanueva et al. 2020). Runs in its own database (spotter_bench_learning, dropped afterwards); each
ranking's approvals are rolled back before the next. Ends with
`RESULT coverage_learning=… coverage_random=… coverage_confidence=… coverage_arrival=… precision=…` at
budget N = the number of categories. Target: learning ≥ 1.25 × random and above the other rankings, at
precision ≥ 0.99.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common import ROOT, parse_args, run_in_bench_database

DB = "spotter_bench_learning"
BANKING77 = ROOT.parent / "shared" / "data" / "banking77"
SMOKE = {"categories": 6, "arrivals": 120, "tests": 60, "budget": [3, 6]}
RANDOM_SEEDS = 5
TARGET_RATIO, TARGET_PRECISION = 1.25, 0.99


@dataclass(frozen=True)
class Question:
    text: str
    category: str


@dataclass(frozen=True)
class Score:
    coverage: float
    precision: float


def load(path: Path) -> list[Question]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [Question(row["text"].strip(), row["category"].strip()) for row in csv.DictReader(handle)]


def canonical_answer(category: str) -> str:
    return f"[{category}] The one approved answer about {category.replace('_', ' ')}."


def sample(questions: list[Question], categories: set[str], size: int | None, seed: int) -> list[Question]:
    kept = [q for q in questions if q.category in categories]
    random.Random(seed).shuffle(kept)  # arrival order: the files are sorted by category
    return kept[:size] if size is not None else kept


# --- arrival: every question answered and queued -----------------------------------------------------------


async def arrive(questions: list[Question]) -> dict[str, str]:
    """Answer each question in a conversation of its own; the category of each answer's message id."""
    from chat import pipeline
    from chat.models import Conversation
    from chat.streams import NullSink

    categories = {}
    for n, question in enumerate(questions):
        turn, _ = await pipeline.answer(visitor_id=f"bench-learning-{n}", conversation_id=None, text=question.text,
                                        client_msg_id="", channel=Conversation.Channel.API, sink=NullSink())
        categories[str(turn.answer_id)] = question.category
    return categories


# --- rankings ----------------------------------------------------------------------------------------------


def rankings(seed: int) -> dict[str, Callable[[list], list]]:
    """Each ranking orders the open queue's items (ReviewItem rows)."""
    def random_order(s: int) -> Callable[[list], list]:
        return lambda items: random.Random(s).sample(items, len(items))

    return {
        "learning value": lambda items: sorted(items, key=lambda i: (-i.learning_value, i.created_at)),
        "1 - confidence": lambda items: sorted(items, key=lambda i: (-i.priority, i.created_at)),
        "arrival": lambda items: sorted(items, key=lambda i: (i.created_at, i.pk)),
        **{f"random {s}": random_order(seed + s) for s in range(RANDOM_SEEDS)},
    }


def open_queue() -> list:
    """The queue as a trainer sees it (near-duplicates grouped under one item); rankings order it."""
    from review.selectors import review_queue

    return list(review_queue(user=None))


def approve(item, categories: dict[str, str], trainer) -> None:
    """As a trainer does: claim, take out of the group any question that is not the same (another
    category), approve with the category's answer."""
    from review.models import ReviewItem
    from review.services import review_item_approve, review_item_claim, review_item_ungroup

    item = review_item_claim(item=item, user=trainer)
    category = categories[str(item.message_id)]
    for member in ReviewItem.objects.filter(representative=item, status="grouped"):
        if categories[str(member.message_id)] != category:
            review_item_ungroup(item=item, member_id=member.pk, reviewer=trainer)
    review_item_approve(item=item, reviewer=trainer, text=canonical_answer(category))


# --- replay ------------------------------------------------------------------------------------------------


def test_queries(tests: list[Question]) -> list:
    from chat.reuse.scope import Scope
    from chat.reuse.selectors import ReuseQuery
    from experiments.selectors import prompt_for_new_answer
    from knowledge.embeddings import QueryVector, active_space_ref, embed_texts
    from knowledge.selectors import kb_version

    ref, prompt = active_space_ref(), prompt_for_new_answer()
    scope = Scope(space_id=ref.space_id, dimensions=ref.spec.dimensions, prompt_version_id=prompt.prompt_version_id,
                  kb_version=kb_version(), language="en")
    vectors = embed_texts([t.text for t in tests], ref.spec)
    return [
        ReuseQuery(question=t.text, vector=QueryVector(ref.space_id, ref.spec.dimensions, v), scope=scope,
                   prompt_name=prompt.name, model="", system_prompt=prompt.system_prompt)
        for t, v in zip(tests, vectors, strict=True)
    ]


def replay(tests: list[Question], queries: list) -> Score:
    from chat.models import Message
    from chat.reuse.selectors import reuse_find

    served = right = 0
    for test, query in zip(tests, queries, strict=True):
        reused = reuse_find(query)
        if reused is None or reused.kind != Message.Reuse.APPROVED:
            continue
        served += 1
        right += reused.text == canonical_answer(test.category)
    return Score(served / len(tests), right / served if served else 1.0)


def measure(order: Callable[[list], list], budgets: list[int], categories: dict[str, str],
            tests: list[Question], queries: list, trainer) -> dict[int, Score]:
    """Approve down the ranking up to each budget, replaying the tests at each; everything rolled back."""
    from django.db import transaction

    scores: dict[int, Score] = {}
    with transaction.atomic():
        queue, approved = order(open_queue()), 0
        for budget in budgets:
            while approved < budget and queue:
                item = queue.pop(0)
                approve(item, categories, trainer)
                approved += 1
            scores[budget] = replay(tests, queries)
        transaction.set_rollback(True)
    return scores


# --- output ------------------------------------------------------------------------------------------------


def mean_random(results: dict[str, dict[int, Score]], budgets: list[int]) -> dict[int, Score]:
    runs = [scores for name, scores in results.items() if name.startswith("random")]
    return {b: Score(statistics.mean(r[b].coverage for r in runs), statistics.mean(r[b].precision for r in runs))
            for b in budgets}


def print_table(table: dict[str, dict[int, Score]], budgets: list[int], n: int) -> None:
    labels = [f"{b}{' (N)' if b == n else ' (2N)' if b == 2 * n else ''}" for b in budgets]
    print("\n| ranking | " + " | ".join(f"coverage @{label}" for label in labels) + " | precision @N |")
    print("|---|" + "---:|" * (len(budgets) + 1))
    for name, scores in table.items():
        cells = " | ".join(f"{scores[b].coverage:.1%}" for b in budgets)
        precision = scores[n].precision if n in scores else scores[budgets[-1]].precision
        print(f"| {name} | {cells} | {precision:.3f} |")


def run(args) -> int:
    from django.conf import settings
    from django.contrib.auth.models import User

    from knowledge.services import embedding_space_ensure
    from review.learning import learning_values_recompute
    from review.models import ReviewItem

    settings.CACHE_ENABLED = False  # every question is answered (and queued); only approvals are replayed
    names = sorted({q.category for q in load(args.train)})
    chosen = set(random.Random(args.seed).sample(names, args.categories) if args.categories else names)
    arrivals = sample(load(args.train), chosen, args.arrivals, args.seed)
    tests = sample(load(args.test), chosen, args.tests, args.seed)
    n = len(chosen)
    budgets = sorted(set(args.budget or [25, 50, n, 2 * n]))
    embedding_space_ensure()
    began = time.perf_counter()
    categories = asyncio.run(arrive(arrivals))
    print(f"{len(arrivals)} questions of {n} categories answered and queued in {time.perf_counter() - began:.0f} s "
          f"({ReviewItem.objects.count()} review items); {len(tests)} test questions")
    began = time.perf_counter()
    learning_values_recompute()
    groups = ReviewItem.objects.filter(status="grouped").count()
    print(f"recompute: {time.perf_counter() - began:.1f} s, {groups} questions grouped under "
          f"{ReviewItem.objects.filter(status='pending').count()} open items")
    trainer = User.objects.create_user("bench-trainer", is_staff=True)
    queries = test_queries(tests)
    results = {name: measure(order, budgets, categories, tests, queries, trainer)
               for name, order in rankings(args.seed).items()}
    table = {name: s for name, s in results.items() if not name.startswith("random")}
    table[f"random (mean of {RANDOM_SEEDS})"] = mean_random(results, budgets)
    print_table(table, budgets, n)
    at = n if n in budgets else budgets[-1]
    learning, randomly = table["learning value"][at], table[f"random (mean of {RANDOM_SEEDS})"][at]
    confidence, arrival = table["1 - confidence"][at], table["arrival"][at]
    met = (learning.coverage >= TARGET_RATIO * randomly.coverage and learning.precision >= TARGET_PRECISION
           and learning.coverage > max(confidence.coverage, arrival.coverage))
    print(f"\nTarget at budget {at}: learning ≥ {TARGET_RATIO} × random and above the others, precision ≥ "
          f"{TARGET_PRECISION}: {'met' if met else 'NOT met'}")
    print(f"\nRESULT coverage_learning={learning.coverage:.4f} coverage_random={randomly.coverage:.4f} "
          f"coverage_confidence={confidence.coverage:.4f} coverage_arrival={arrival.coverage:.4f} "
          f"precision={learning.precision:.4f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Spotter active-learning benchmark")
    parser.add_argument("--train", type=Path, default=BANKING77 / "train.csv")
    parser.add_argument("--test", type=Path, default=BANKING77 / "test.csv")
    parser.add_argument("--budget", type=int, action="append", help="approvals per ranking (repeatable; "
                        "default 25, 50, N and 2N, N = the number of categories)")
    parser.add_argument("--categories", type=int, default=None, help="a seeded sample of N categories (default: all)")
    parser.add_argument("--arrivals", type=int, default=None, help="at most N training questions arrive (default: all)")
    parser.add_argument("--tests", type=int, default=None, help="at most N test questions (default: all)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep-db", action="store_true")
    args = parse_args(parser, SMOKE)
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    return run_in_bench_database(lambda: run(args), name=DB, keep_db=args.keep_db)


if __name__ == "__main__":
    sys.exit(main())
