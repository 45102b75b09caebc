"""Context within the token budget over a long conversation.

A scripted 30-turn conversation goes through the project's own pipeline (the exercise database as
the knowledge base, the offline provider answering, summary folding run in-process as the Celery
worker would). The visitor states facts about themselves in the first turns. For each turn the
pipeline records the tokens it sent and the tokens the full history would have needed (the
baseline: every earlier turn verbatim); at turn 30 the early facts must still be reachable, in the
visitor's memory or in the summary.

    make bench
    python bench/context.py [--turns 30]
    python bench/context.py --smoke    # tiny sizes: checks that it runs, measures nothing

Runs in its own database (spotter_bench_context, dropped afterwards). Ends with `RESULT context_share_turn30=…`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from common import parse_args, run_in_bench_database

DB = "spotter_bench_context"
SMOKE = {"turns": 4, "distractors": 10}
FACTS = ["I'm training for a 10 km race in June.", "I have a bad left knee.", "I only have dumbbells at home."]
OPENING = [f"{FACTS[0]} How should I warm up?", f"{FACTS[1]} Is the goblet squat safe for me?",
           f"{FACTS[2]} What can I do for my back?"]
QUESTIONS = [
    "How do I do a Romanian deadlift?", "How many sets of push-ups should I do?", "How do I do a plank?",
    "What muscles does the bench press work?", "How do I do a dumbbell bicep curl?", "How do I do crunches?",
    "How do I do a pull-up?", "How do I do a seated calf raise?", "How do I do lying leg curls?",
    "What is a good hamstring exercise?", "How do I do a front squat?", "How do I do a bodyweight squat?",
    "What is a good shoulder exercise?", "How do I stretch my hamstrings?", "How do I do a lunge?",
    "How do I do a side plank?", "What is a good exercise for the glutes?", "How do I do a step-up?",
    "How do I do a dumbbell row?", "How do I do a glute bridge?", "How do I do mountain climbers?",
    "What is a good triceps exercise?", "How do I do a farmer's walk?", "How do I do a wall sit?",
    "How do I do a bird dog?", "How do I do a Russian twist?", "How do I do a hip thrust?",
]


def run(turns: int, distractors: int | None) -> int:
    from django.conf import settings
    from retrieval import ingest_distractors

    from chat import pipeline
    from chat.models import Conversation, Message, VisitorFact
    from chat.streams import NullSink

    settings.CELERY_TASK_ALWAYS_EAGER = True
    logging.getLogger("celery").setLevel(logging.WARNING)  # one "task succeeded" line per fold otherwise
    ingest_distractors(distractors)
    script = (OPENING + QUESTIONS)[:turns]

    async def converse() -> str:
        conversation_id = None
        for text in script:
            turn, _ = await pipeline.answer(visitor_id="bench-visitor", conversation_id=conversation_id, text=text,
                                            client_msg_id="", channel=Conversation.Channel.API, sink=NullSink())
            conversation_id = turn.conversation_id
        return str(conversation_id)

    conversation_id = asyncio.run(converse())
    answers = list(Message.objects.filter(conversation_id=conversation_id, role="assistant").order_by("sequence"))
    print(f"{len(answers)}-turn conversation, budget {settings.CHAT_CONTEXT_TOKEN_BUDGET} tokens, last "
          f"{settings.CHAT_HISTORY_TURNS} messages verbatim, summary up to {settings.CHAT_SUMMARY_TOKENS} tokens\n")
    print("| turn | tokens sent | full history would need | share |")
    print("|---:|---:|---:|---:|")
    for n in sorted({1, 5, 10, 15, 20, 25, turns} & set(range(1, len(answers) + 1))):
        sent, full = answers[n - 1].context_tokens, answers[n - 1].full_history_tokens
        print(f"| {n} | {sent} | {full} | {sent / full:.3f} |")

    conversation = Conversation.objects.get(pk=conversation_id)
    remembered = set(VisitorFact.objects.filter(profile__visitor_id="bench-visitor").values_list("value", flat=True))
    memory = [f for f in FACTS if f in remembered]
    summary = [f for f in FACTS if f.rstrip(".").lower() in conversation.summary.lower()]
    reachable = [f for f in FACTS if f in memory or f in summary]
    print(f"\nFacts stated in turns 1-3 still reachable at turn {len(answers)}: {len(reachable)}/{len(FACTS)} "
          f"(in memory {len(memory)}, in the summary {len(summary)})")
    last = answers[-1]
    share = last.context_tokens / last.full_history_tokens
    print(f"\nRESULT context_share_turn30={share:.3f} facts_reachable={len(reachable)}/{len(FACTS)}")
    return 0 if len(reachable) == len(FACTS) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description="Spotter context-budget benchmark")
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--distractors", type=int, default=None,
                        help="only the first N exercises in the knowledge base (default: all)")
    parser.add_argument("--keep-db", action="store_true")
    args = parse_args(parser, SMOKE)
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    turns = min(args.turns, len(OPENING) + len(QUESTIONS))
    return run_in_bench_database(lambda: run(turns, args.distractors), name=DB, keep_db=args.keep_db)

if __name__ == "__main__":
    sys.exit(main())
