"""Confidence calibration: the learnt predictor against the retrieval heuristic on SQuAD-format data.

Each passage of the SQuAD file becomes a document (as in bench/retrieval.py); every question is then
answered through the project's own pipeline, offline, with the answer cache off so that each one is
generated. An answer is right when one of the chunks it cites contains the question's answer text
(case-insensitive). Each answer's features and heuristic confidence are read from its monitoring
fact. The questions are split in half by article (seeded), so the halves share no passage; the
predictor is fitted on one half and both it and the heuristic are measured on the other: Brier
score, expected calibration error (10 bins) and the reliability table.

    make bench                                       # runs this under the embedded Postgres
    python bench/calibration.py [--squad FILE] [--articles N] [--questions N]
    python bench/calibration.py --smoke              # tiny sizes: checks that it runs, measures nothing

Runs in its own database (spotter_bench_calibration, dropped afterwards). Prints its table and ends
with `RESULT brier_predictor=… brier_heuristic=… ece_predictor=… ece_heuristic=…`.
Target: the predictor's Brier score below the heuristic's and its ECE ≤ 0.05.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common import parse_args, run_in_bench_database
from retrieval import DEFAULT_SQUAD, Question, ingest_corpus, load_squad

DB = "spotter_bench_calibration"
# Ten articles' passages, so that retrieval can pick a wrong one and both outcomes occur; few questions.
SMOKE = {"articles": 10, "questions": 40}
TARGET_ECE = 0.05


@dataclass(frozen=True)
class Answered:
    article: int
    features: dict
    heuristic: float
    right: bool


def questions_by_article(path: Path, articles: int | None) -> list[int]:
    """The article index of each question, in load_squad's order (it does not say which article a
    question came from, and the split needs it)."""
    data = json.loads(path.read_text())["data"][:articles]
    return [a for a, article in enumerate(data) for paragraph in article["paragraphs"] for _ in paragraph["qas"]]


def split_by_article(answered: list[Answered], seed: int) -> tuple[list[Answered], list[Answered]]:
    """Articles in a seeded order go to the training half whenever that brings it closer to half the
    answers (articles differ in size): the halves share no passage, so the test half measures answers
    to passages the predictor never saw."""
    articles = sorted({a.article for a in answered})
    random.Random(seed).shuffle(articles)
    train_articles: set[int] = set()
    taken, half = 0, len(answered) / 2
    for article in articles:
        size = sum(a.article == article for a in answered)
        if abs(taken + size - half) < abs(taken - half):
            train_articles.add(article)
            taken += size
    if len(train_articles) == len(articles):  # one article only (a tiny run): split its questions instead
        shuffled = random.Random(seed).sample(answered, len(answered))
        return shuffled[: len(answered) // 2], shuffled[len(answered) // 2:]
    return ([a for a in answered if a.article in train_articles],
            [a for a in answered if a.article not in train_articles])


async def answer_all(questions: list[Question]) -> list[tuple[str, dict]]:
    """(answer message id, end frame) of each question, one new conversation each, so no answer
    depends on an earlier one."""
    from chat import pipeline
    from chat.models import Conversation
    from chat.streams import NullSink

    frames = []
    for n, question in enumerate(questions):
        # A visitor per question: one visitor asking a thousand questions would meet the rate limits.
        turn, frame = await pipeline.answer(visitor_id=f"bench-calibration-{n}", conversation_id=None,
                                            text=question.text, client_msg_id="", channel=Conversation.Channel.API,
                                            sink=NullSink())
        frames.append((str(turn.answer_id), frame))
    return frames


def judge(questions: list[Question], articles: list[int], frames: list[tuple[str, dict]]) -> list[Answered]:
    """Each generated answer's features, heuristic confidence and whether a cited chunk holds the answer."""
    from knowledge.models import Chunk
    from monitoring.models import AnswerFact

    facts = {str(m): (f, c) for m, f, c in AnswerFact.objects.filter(
        message_id__in=[m for m, _ in frames], status="complete").values_list("message_id", "features", "confidence")}
    cited_ids = {s["chunk_id"] for _, frame in frames for s in frame.get("sources", [])}
    texts = dict(Chunk.objects.filter(pk__in=cited_ids).values_list("pk", "text"))
    answered = []
    for question, article, (message_id, frame) in zip(questions, articles, frames, strict=True):
        if frame.get("type") != "end" or message_id not in facts:
            continue  # a failed answer has no features to learn from; counted in the header
        features, heuristic = facts[message_id]
        if "confidence_source" not in features:
            continue  # refused by the safety policy (chat/safety/screening.py): nothing was generated
        # No model exists in the bench database, so the stored confidence is the heuristic's.
        assert features.get("confidence_source") == "heuristic", features.get("confidence_source")
        answer = question.answer.lower()
        right = any(answer in texts.get(s["chunk_id"], "").lower() for s in frame.get("sources", []))
        answered.append(Answered(article, features, float(heuristic), right))
    return answered


def print_table(result: dict, test: int) -> None:
    predictor, heuristic = result["predictor"], result["baseline"]
    print(f"\nCalibration on the held-out half ({test} answers)\n")
    print("| confidence | Brier | ECE (10 bins) |")
    print("|---|---:|---:|")
    print(f"| predictor (logistic regression) | {predictor['brier']:.4f} | {predictor['ece']:.4f} |")
    print(f"| heuristic (best cited cosine) | {heuristic['brier']:.4f} | {heuristic['ece']:.4f} |")
    print("\nReliability: mean confidence / share right (answers) per bin\n")
    print("| bin | predictor | heuristic |")
    print("|---|---:|---:|")

    def cell(row: dict) -> str:
        return "–" if not row["count"] else f"{row['predicted']:.2f} / {row['observed']:.2f} ({row['count']})"

    for p, h in zip(predictor["reliability"], heuristic["reliability"], strict=True):
        print(f"| {p['low']:.1f}–{p['high']:.1f} | {cell(p)} | {cell(h)} |")


def run(args) -> int:
    from django.conf import settings

    from monitoring.confidence import confidence_fit_evaluate

    # Every question must be generated: a cached answer has no features of its own to learn from.
    settings.CACHE_ENABLED = False
    passages, _, questions = load_squad(args.squad, args.articles)
    articles = questions_by_article(args.squad, args.articles)
    if args.questions is not None and args.questions < len(questions):
        # A seeded sample across every article rather than the first N, so the cap keeps several articles.
        keep = sorted(random.Random(args.seed).sample(range(len(questions)), args.questions))
        questions, articles = [questions[i] for i in keep], [articles[i] for i in keep]
    began = time.perf_counter()
    ingest_corpus("squad-passages", passages)
    print(f"{args.squad.name}: {len(passages)} passages ingested in {time.perf_counter() - began:.0f} s; "
          f"{len(questions)} questions")
    began = time.perf_counter()
    frames = asyncio.run(answer_all(questions))
    answered = judge(questions, articles, frames)
    right = sum(a.right for a in answered)
    print(f"answered in {time.perf_counter() - began:.0f} s: {len(answered)} generated "
          f"({len(questions) - len(answered)} failed), {right} right ({right / max(len(answered), 1):.1%})")

    train, test = split_by_article(answered, args.seed)
    if len({a.right for a in train}) < 2 or not test:
        # Logistic regression needs both outcomes to learn from; only a tiny run can miss one.
        print(f"\ntraining half ({len(train)}) lacks right or wrong answers: nothing to fit")
        print("\nRESULT brier_predictor=nan brier_heuristic=nan ece_predictor=nan ece_heuristic=nan")
        return 0 if args.smoke else 1
    result = confidence_fit_evaluate(train=[(a.features, a.right) for a in train],
                                     test=[(a.features, a.right) for a in test],
                                     baseline=[a.heuristic for a in test])
    print(f"split by article (seed {args.seed}): {len(train)} answers to train on, {len(test)} to test on")
    print_table(result, len(test))
    predictor, heuristic = result["predictor"], result["baseline"]
    met = predictor["brier"] < heuristic["brier"] and predictor["ece"] <= TARGET_ECE
    print(f"\nTarget: predictor Brier < heuristic Brier and predictor ECE ≤ {TARGET_ECE}: "
          f"{'met' if met else 'NOT met'}")
    print(f"\nRESULT brier_predictor={predictor['brier']:.4f} brier_heuristic={heuristic['brier']:.4f} "
          f"ece_predictor={predictor['ece']:.4f} ece_heuristic={heuristic['ece']:.4f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Spotter confidence calibration benchmark")
    parser.add_argument("--squad", type=Path, default=DEFAULT_SQUAD, help="a file in SQuAD v1.1 format")
    parser.add_argument("--articles", type=int, default=None, help="only the file's first N articles (default: all)")
    parser.add_argument("--questions", type=int, default=None,
                        help="at most N questions, a seeded sample over the articles (default: all)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep-db", action="store_true")
    args = parse_args(parser, SMOKE)
    # The answers' facts are read with the ORM after the event loop that wrote them has finished.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    return run_in_bench_database(lambda: run(args), name=DB, keep_db=args.keep_db)


if __name__ == "__main__":
    sys.exit(main())
