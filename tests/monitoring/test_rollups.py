"""The dashboard's rollups: kept by every fact write, thumbs change and handoff; they agree with the raw facts
(and with a rebuild from them); compaction drops raw facts and old minute rows while the hour totals stay."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db.models import Count, Q, Sum
from django.utils import timezone

from monitoring.dashboard import dashboard_data, percentile
from monitoring.models import AnswerFact, AnswerRollup
from monitoring.rollups import LATENCY_EDGES_MS, facts_compact, rollups_rebuild, series
from monitoring.services import answer_fact_record, answer_feedback_record, handoff_fact_open
from tests.chat.test_consumer import ask_and_finish, connect

pytestmark = pytest.mark.django_db


def record(rng: random.Random, **overrides) -> AnswerFact:
    status = "failed" if rng.random() < 0.1 else "complete"
    facts = dict(
        message_id=uuid.uuid4(), conversation_id=uuid.uuid4(), status=status, model=rng.choice(["a", "b"]),
        prompt_version_id=rng.choice([None, 1, 2]), reuse=rng.choice(["none", "none", "cache", "approved"]),
        confidence=None if status == "failed" else rng.random(), latency_ms=rng.randint(3, 70000),
        ttft_ms=rng.choice([None, rng.randint(1, 900)]), tokens_in=rng.randint(0, 900), tokens_out=rng.randint(0, 300),
        cost=Decimal(rng.randint(0, 5000)) / 10**6, language=rng.choice(["en", "de"]),
    )
    return answer_fact_record(**{**facts, **overrides})


def raw_totals(granularity: str) -> dict[tuple, dict]:
    rows = AnswerRollup.objects.filter(granularity=granularity).values("bucket", "language", "model")
    return {(r["bucket"], r["language"], r["model"]): r for r in rows.annotate(
        n=Sum("answers"), failed_n=Sum("failed"), approved=Sum("reused_approved"), cached=Sum("reused_cache"),
        low=Sum("low_confidence"), up=Sum("thumbs_up"), down=Sum("thumbs_down"), spent=Sum("cost"),
        handed=Sum("handoffs"), tin=Sum("tokens_in"))}


def test_rollups_agree_with_the_raw_facts_and_with_a_rebuild_from_them(settings):
    rng = random.Random(7)
    facts = [record(rng) for _ in range(120)]
    for fact in rng.sample(facts, 40):
        answer_feedback_record(message_id=fact.message_id, value=rng.choice(["up", "down"]))
    for fact in rng.sample(facts, 10):  # a changed mind moves the count, it does not add one
        answer_feedback_record(message_id=fact.message_id, value="down")
    for n, fact in enumerate(rng.sample(facts, 5)):
        handoff_fact_open(handoff_id=n, conversation_id=fact.conversation_id, reason="asked",
                          requested_at=timezone.now(), prompt_version_id=fact.prompt_version_id)

    hour = AnswerRollup.objects.filter(granularity="hour").aggregate(
        answers=Sum("answers"), failed=Sum("failed"), cached=Sum("reused_cache"), approved=Sum("reused_approved"),
        up=Sum("thumbs_up"), down=Sum("thumbs_down"), cost=Sum("cost"), low=Sum("low_confidence"),
        handoffs=Sum("handoffs"))
    raw = AnswerFact.objects.aggregate(
        answers=Count("pk"), failed=Count("pk", filter=Q(status="failed")), cached=Count("pk", filter=Q(reuse="cache")),
        approved=Count("pk", filter=Q(reuse="approved")), up=Count("pk", filter=Q(feedback="up")),
        down=Count("pk", filter=Q(feedback="down")), cost=Sum("cost"),
        low=Count("pk", filter=Q(status="complete", confidence__lt=settings.MONITORING_LOW_CONFIDENCE_BELOW)))
    assert hour == {**raw, "handoffs": 5}
    minute_answers = AnswerRollup.objects.filter(granularity="minute").aggregate(n=Sum("answers"))["n"]
    assert minute_answers == 120

    hist = [0] * (len(LATENCY_EDGES_MS) + 1)
    for row in AnswerRollup.objects.filter(granularity="hour"):
        hist = [a + b for a, b in zip(hist, row.latency_hist, strict=True)]
    latencies = sorted(f.latency_ms for f in facts)
    assert sum(hist) == 120
    true_p95 = latencies[int(0.95 * 120) - 1]
    estimated = percentile(hist, 0.95)
    low_edge = max([0, *(e for e in LATENCY_EDGES_MS if e < true_p95)])
    high_edge = min([e for e in LATENCY_EDGES_MS if e >= true_p95] or [LATENCY_EDGES_MS[-1]])
    assert low_edge <= estimated <= high_edge  # exact to the histogram's bucket

    live = {granularity: raw_totals(granularity) for granularity in ("minute", "hour", "day")}
    now = timezone.now()
    rollups_rebuild(since=now - timedelta(hours=2), until=now, through_today=True)
    assert {granularity: raw_totals(granularity) for granularity in ("minute", "hour", "day")} == live


def test_a_changed_thumb_moves_between_up_and_down():
    fact = record(random.Random(1))
    answer_feedback_record(message_id=fact.message_id, value="up")
    answer_feedback_record(message_id=fact.message_id, value="up")  # said twice, counted once
    answer_feedback_record(message_id=fact.message_id, value="down")
    row = AnswerRollup.objects.get(granularity="hour")
    assert (row.thumbs_up, row.thumbs_down) == (0, 1)


def test_compaction_drops_old_raw_facts_and_minute_rows_but_hour_totals_stay(settings):
    rng = random.Random(3)
    old, recent = [record(rng) for _ in range(6)], [record(rng) for _ in range(4)]
    long_ago = timezone.now() - timedelta(days=settings.MONITORING_RAW_FACT_DAYS + 1)
    AnswerFact.objects.filter(pk__in=[f.pk for f in old]).update(created_at=long_ago)
    rollups_rebuild(since=long_ago - timedelta(hours=1), until=timezone.now(), through_today=True)

    deleted = facts_compact()

    assert deleted["facts"] == 6 and deleted["minute_rollups"] >= 1
    assert set(AnswerFact.objects.values_list("pk", flat=True)) == {f.pk for f in recent}
    assert AnswerRollup.objects.filter(granularity="hour").aggregate(n=Sum("answers"))["n"] == 10
    assert not AnswerRollup.objects.filter(granularity="minute", bucket__lt=long_ago + timedelta(hours=1)).exists()


def test_the_dashboard_reads_rates_percentiles_and_filters_from_the_rollups():
    now = datetime(2026, 11, 30, 12, 30, tzinfo=UTC)
    for n, (language, latency, reuse) in enumerate([("en", 100, "none"), ("en", 900, "cache"), ("de", 4000, "none")]):
        fact = record(random.Random(n), language=language, latency_ms=latency, reuse=reuse, status="complete",
                      confidence=0.9, prompt_version_id=1)
        AnswerFact.objects.filter(pk=fact.pk).update(created_at=now - timedelta(minutes=5))
    AnswerRollup.objects.all().delete()
    rollups_rebuild(since=now - timedelta(hours=1), until=now, through_today=True)

    everything = dashboard_data(range_name="hour", filters={}, now=now)
    english = dashboard_data(range_name="hour", filters={"language": "en", "intent": ""}, now=now)

    assert len(everything["bins"]) == 60
    assert everything["totals"]["answers"] == 3 and english["totals"]["answers"] == 2
    assert english["totals"]["reuse_rate"] == pytest.approx(0.5)
    assert 750 <= english["totals"]["latency_p95_ms"] <= 1000
    assert sum(everything["series"]["answers_per_minute"]) == 3
    assert everything["options"]["language"] == ["de", "en"] and english["filters"] == {"language": "en"}
    points = series(metric="answers_per_minute", since=now - timedelta(hours=1), until=now)
    assert points == [(now.replace(minute=0), 3 / 60)]


async def recorded_fact() -> AnswerFact:
    """The answer's fact: recorded after its `end` frame was sent, so it may land a moment later."""
    for _ in range(100):
        if fact := await AnswerFact.objects.afirst():
            return fact
        await asyncio.sleep(0.05)
    raise AssertionError("no monitoring fact was recorded for the answer")


@pytest.mark.django_db(transaction=True)  # the consumer's threads must see the knowledge base
async def test_a_websocket_answer_is_rolled_up_with_its_language_question_and_embedding(kb):
    ws = await connect()
    await ask_and_finish(ws, "How do I do a push-up?")
    await ws.disconnect()

    fact = await recorded_fact()
    row = await AnswerRollup.objects.aget(granularity="minute")
    assert (row.answers, row.language) == (1, fact.language) and fact.language
    assert fact.question == "How do I do a push-up?" and len(fact.question_embedding) == 384
    assert fact.best_match is not None and sum(row.latency_hist) == 1
