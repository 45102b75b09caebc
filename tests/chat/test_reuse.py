"""Answer reuse through the real pipeline: approved answers, the two cache levels, scopes,
invalidation, blocking, expiry and eviction, and Redis going away."""

import asyncio
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest
from channels.db import database_sync_to_async as in_db
from django.db import connection
from django.utils import timezone

from chat.models import CacheCalibration, CacheEntry, Message
from chat.reuse import selectors as reuse_selectors
from chat.reuse import services as reuse_services
from chat.reuse.scope import Scope, redis_client
from chat.services import feedback_set
from experiments.services import prompt_version_create
from knowledge.embeddings import active_space_ref
from knowledge.models import Document
from knowledge.selectors import kb_version
from knowledge.services import documents_upsert
from review.models import ApprovedAnswer, ReviewItem
from review.services import approved_answer_save, review_item_reject
from tests.chat.test_pipeline import ask

pytestmark = pytest.mark.django_db(transaction=True)

SQUAT = "How do I do a barbell squat?"


@pytest.fixture(autouse=True)
def _fresh_cache_state():
    reuse_selectors.forget_guard_params()
    redis_client.cache_clear()
    reuse_services.indexes_forget()
    yield
    reuse_selectors.forget_guard_params()
    redis_client.cache_clear()


def permissive_guard(**overrides):
    """A calibration that lets close paraphrases through (one entry: the near-duplicate tier)."""
    params = {"min_similarity": 0.9, "min_gap": 0.1, "min_support": 3, "near_duplicate": 0.8,
              "near_duplicate_gap": 0.0, "neighbours": 10, **overrides}
    CacheCalibration.objects.create(params=params, target_precision=0.99, precision=0.99, hit_rate=0.5,
                                    labelled=100, source="test")
    reuse_selectors.forget_guard_params()


async def answer_of(turn) -> Message:
    return await in_db(Message.objects.get)(pk=turn.answer_id)


async def assert_cached(turn) -> None:
    """A refusal to reuse proves something only if there was an answer to reuse."""
    assert await in_db(CacheEntry.objects.filter(message_id=turn.answer_id, blocked_at__isnull=True).exists)()


async def test_the_same_question_from_another_visitor_is_served_from_the_cache(kb, online, settings):
    settings.LLM_PRICING = {"fake-model": (Decimal("1.00"), Decimal("2.00"))}
    online.script.answers.append("Keep your chest up and squat deep [1].")
    first, end1 = await ask(SQUAT, visitor="alice")
    second, end2 = await ask("how do I do a BARBELL squat", visitor="bob")

    assert end1["reuse"] == "none" and end2["reuse"] == "cache"
    reused = await answer_of(second)
    assert reused.text == "Keep your chest up and squat deep [1]."
    assert reused.reuse == Message.Reuse.CACHE and reused.reuse_details["level"] == "exact"
    assert reused.tokens_in == 0 and reused.cost == 0
    assert reused.cost_avoided == (await answer_of(first)).cost > 0
    assert end2["sources"] == end1["sources"]
    assert len(online.script.requests) == 1  # the model was asked once
    entry = await in_db(CacheEntry.objects.get)(pk=reused.reused_entry_id)
    assert entry.hits == 1 and entry.message_id == first.answer_id


async def test_a_paraphrase_is_served_when_the_guard_lets_it_through(kb):
    await in_db(permissive_guard)()
    await ask(SQUAT, visitor="alice")
    turn, end = await ask("What is the right way to do a barbell squat?", visitor="bob")
    assert end["reuse"] == "cache"
    details = (await answer_of(turn)).reuse_details
    assert details["level"] == "semantic" and details["similarity"] >= 0.8
    # The paraphrase became an alias: one more neighbour agreeing with this answer next time.
    assert await in_db(CacheEntry.objects.filter(alias_of__isnull=False).count)() == 1


async def test_the_opposite_question_is_not_served_the_cached_answer(kb):
    await in_db(permissive_guard)(near_duplicate=0.5)
    first, _ = await ask("How do I gain weight with squats?", visitor="alice")
    await assert_cached(first)
    _, end = await ask("How do I lose weight with squats?", visitor="bob")
    assert end["reuse"] == "none"


async def test_reuse_never_crosses_prompt_versions(kb):
    first, _ = await ask(SQUAT, visitor="alice")
    await assert_cached(first)
    await in_db(prompt_version_create)(name="coach", system_prompt="Be brief. Cite [1].", labels=["production"])
    _, end = await ask(SQUAT, visitor="bob")
    assert end["reuse"] == "none"


async def test_reuse_never_crosses_knowledge_base_versions_and_a_changed_document_drops_its_answers(
    kb, exercise_drafts
):
    _, end = await ask(SQUAT, visitor="alice")
    entry = await in_db(CacheEntry.objects.get)()
    cited = await in_db(Document.objects.get)(chunks__id=end["sources"][0]["chunk_id"])
    assert cited.pk in entry.document_ids

    draft = next(d for d in exercise_drafts if d.external_id == cited.external_id)
    changed = replace(draft, content=draft.content + "\nNew: keep the bar over mid-foot.")
    await in_db(documents_upsert)(source=kb, drafts=[changed])

    assert not await in_db(CacheEntry.objects.filter(pk=entry.pk).exists)()
    _, again = await ask(SQUAT, visitor="bob")
    assert again["reuse"] == "none"


async def test_reuse_never_crosses_languages(kb):
    await ask(SQUAT, visitor="alice")
    entry = await in_db(CacheEntry.objects.get)()
    assert entry.language == "en"
    scope = Scope(entry.space_id, 384, entry.prompt_version_id, entry.kb_version, "de")
    assert await in_db(reuse_selectors.lookup)(scope, SQUAT, None) is None
    assert await in_db(reuse_selectors.lookup)(replace(scope, language="en"), SQUAT, None) is not None


async def test_an_answer_shaped_by_a_profile_is_never_served_to_another_visitor(kb):
    _, first = await ask("I have a bad left knee. How do I do a barbell squat?", visitor="alice")
    entry = await in_db(CacheEntry.objects.get)()
    assert entry.visitor_id == "alice" and entry.profile_hash
    _, other = await ask("I have a bad left knee. How do I do a barbell squat?", visitor="bob")
    assert other["reuse"] == "none"  # bob's own profile differs in nothing but its owner: still his own
    _, same = await ask("I have a bad left knee. How do I do a barbell squat?", visitor="alice")
    assert same["reuse"] == "cache"


async def test_one_thumbs_down_does_not_block_the_entry_for_other_visitors(kb):
    first, _ = await ask(SQUAT, visitor="alice")
    await in_db(feedback_set)(visitor_id="alice", message_id=first.answer_id, value="down", reason="wrong")
    entry = await in_db(CacheEntry.objects.get)()
    assert entry.blocked_at is None
    _, end = await ask(SQUAT, visitor="bob")
    assert end["reuse"] == "cache"


async def test_thumbs_down_on_served_copies_from_enough_visitors_block_the_entry_for_good(kb, settings):
    settings.CACHE_BLOCK_DOWNVOTES = 2
    await ask(SQUAT, visitor="alice")
    for visitor in ("bob", "carol"):
        served, end = await ask(SQUAT, visitor=visitor)
        assert end["reuse"] == "cache"
        await in_db(feedback_set)(visitor_id=visitor, message_id=served.answer_id, value="down")
    entry = await in_db(CacheEntry.objects.get)()
    assert entry.blocked_at is not None and "thumbs down" in entry.blocked_reason
    _, end = await ask(SQUAT, visitor="dave")
    assert end["reuse"] == "none"
    # Nor is the new answer cached in its place: the question stays refused until the scope changes.
    assert await in_db(CacheEntry.objects.filter(blocked_at__isnull=True).count)() == 0


async def test_a_rejection_in_review_blocks_the_entry(kb):
    first, _ = await ask(SQUAT, visitor="alice")
    item = await in_db(ReviewItem.objects.create)(message_id=first.answer_id, priority=0.5, reason="test")
    await in_db(review_item_reject)(item=item, reviewer=None, reason="wrong")
    assert await in_db(CacheEntry.objects.filter(blocked_at__isnull=False).count)() == 1


async def test_expired_entries_are_not_served_and_eviction_keeps_the_size_cap(kb, settings):
    first, _ = await ask(SQUAT, visitor="alice")
    await assert_cached(first)
    expired = timezone.now() - timedelta(seconds=settings.CACHE_TTL_SECONDS + 1)
    await in_db(CacheEntry.objects.update)(created_at=expired)
    _, end = await ask(SQUAT, visitor="bob")
    assert end["reuse"] == "none"

    await ask("How do I do a plank?", visitor="alice")
    await ask("How do I do a pull-up?", visitor="alice")
    await ask("How do I do a plank?", visitor="bob")  # a hit: the plank entry is the most recently used
    settings.CACHE_MAX_ENTRIES = 1
    current = await in_db(kb_version)()
    counts = await in_db(reuse_services.evict)(current_kb_version=current, active_space_id=None)
    assert counts["expired"] >= 1 and counts["evicted"] >= 1
    left = await in_db(list)(CacheEntry.objects.values_list("question", flat=True))
    assert left == ["How do I do a plank?"]


async def test_an_answer_finishing_while_another_creates_the_cache_index_is_cached(kb, monkeypatch):
    """Answers that finish together race to create the space's index: the loser must still cache."""
    monkeypatch.setattr(reuse_services, "INDEX_LOCK_TIMEOUT", "30s")  # the test, not the timeout, decides the order
    space = await in_db(active_space_ref)()
    params = await in_db(connection.get_connection_params)()
    with psycopg.connect(**params) as other, psycopg.connect(**params, autocommit=True) as observer:
        other.execute(reuse_services.index_sql(space.space_id, space.spec.dimensions))  # not committed yet
        asking = asyncio.ensure_future(ask(SQUAT, visitor="alice"))
        while not observer.execute("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                   "AND query LIKE 'CREATE INDEX%%'").fetchone():
            assert not asking.done(), asking.result()
            await asyncio.sleep(0.01)
        other.commit()  # the other answer's index lands first
        turn, end = await asking
    assert end["type"] == "end"
    assert await in_db(CacheEntry.objects.filter(message_id=turn.answer_id).exists)()
    _, again = await ask(SQUAT, visitor="bob")
    assert again["reuse"] == "cache"


async def test_with_redis_down_answers_are_still_served_and_reused(kb, settings):
    settings.CACHE_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    redis_client.cache_clear()
    _, first = await ask(SQUAT, visitor="alice")
    _, second = await ask(SQUAT, visitor="bob")
    assert first["type"] == "end" and second["type"] == "end"
    assert second["reuse"] == "cache"  # PostgreSQL answers the exact level too


async def test_an_approved_answer_is_served_first_and_counted(kb):
    approved = await in_db(approved_answer_save)(answer=ApprovedAnswer(
        question="How do I perform a barbell squat correctly?", answer="Brace, sit back, knees out. (verified)",
        language="en",
    ))
    turn, end = await ask("How do I do a barbell squat correctly?", visitor="carol")
    assert end["reuse"] == "approved" and end["confidence"] == 1.0
    message = await answer_of(turn)
    assert message.text == "Brace, sit back, knees out. (verified)" and message.approved_answer_id == approved.pk
    await in_db(approved.refresh_from_db)()
    assert approved.hit_count == 1 and approved.last_hit_at is not None


async def test_an_expired_or_other_language_approved_answer_is_not_served(kb):
    await in_db(approved_answer_save)(answer=ApprovedAnswer(
        question="How do I do a barbell squat?", answer="old", language="en",
        expires_at=timezone.now() - timedelta(days=1),
    ))
    await in_db(approved_answer_save)(answer=ApprovedAnswer(question="How do I do a barbell squat?",
                                                            answer="alt", language="de"))
    _, end = await ask(SQUAT, visitor="carol")
    assert end["reuse"] == "none"


async def test_two_different_answers_approved_for_one_question_are_not_served(kb):
    for text in ("Brace and sit back.", "Keep the bar over mid-foot."):
        await in_db(approved_answer_save)(answer=ApprovedAnswer(question=SQUAT, answer=text))
    _, end = await ask(SQUAT, visitor="dave")
    assert end["reuse"] == "none"
    await in_db(approved_answer_save)(answer=ApprovedAnswer(question=SQUAT + " ", answer="Brace and sit back."))
    await in_db(ApprovedAnswer.objects.filter(answer="Keep the bar over mid-foot.").update)(is_active=False)
    _, end = await ask(SQUAT, visitor="erin")
    assert end["reuse"] == "approved"  # the same answer approved twice agrees with itself


async def test_a_failing_reuse_lookup_is_a_miss_and_the_question_is_answered(kb, caplog):
    first, _ = await ask(SQUAT, visitor="alice")
    await assert_cached(first)
    await in_db(CacheCalibration.objects.create)(  # a row the guard cannot read
        params={"min_similarity": 0.9, "no_such_threshold": 1}, target_precision=0.99, precision=0.99,
        hit_rate=0.5, labelled=10, source="test",
    )
    reuse_selectors.forget_guard_params()
    turn, end = await ask("What is the right way to do a barbell squat?", visitor="bob")
    assert end["type"] == "end" and end["reuse"] == "none" and end["sources"]
    assert (await answer_of(turn)).status == Message.Status.COMPLETE
    assert f"reuse lookup for {turn.answer_id} failed" in caplog.text
