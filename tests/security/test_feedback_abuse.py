"""Feedback cannot take a shared cached answer away from everyone: one visitor's thumbs-down stops it
for that visitor (and queues it for a trainer); only several distinct visitors, or a trainer's
rejection, block it for all. Through the REST API, the real pipeline, PostgreSQL and Redis."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from chat.models import CacheCalibration, CacheEntry, Message
from chat.reuse import selectors as reuse_selectors
from chat.reuse.scope import Scope
from chat.tasks import answer_cache_blocked_evict
from chat.visitors import visitor_token_issue
from review.models import ReviewItem
from review.services import review_item_claim, review_item_reject
from tests.chat.test_reuse import _fresh_cache_state  # noqa: F401  (autouse: the reuse tests' clean cache state)
from tests.factories import CacheEntryFactory, TrainerFactory

pytestmark = pytest.mark.django_db(transaction=True)

SQUAT = "How do I do a barbell squat?"


class Visitor:
    """A widget visitor with their own token, asking and voting through the REST API."""

    def __init__(self) -> None:
        self.id, token = visitor_token_issue()
        self.client = APIClient()
        self.client.credentials(HTTP_X_VISITOR_TOKEN=token)

    def ask(self, text: str = SQUAT) -> Message:
        conversation = self.client.post("/api/v1/conversations/").json()
        response = self.client.post(f"/api/v1/conversations/{conversation['id']}/messages/", {"text": text},
                                    format="json")
        assert response.status_code == 201, response.content
        return Message.objects.get(pk=response.json()["answer"]["id"])

    def vote(self, answer: Message, value: str = "down") -> None:
        response = self.client.post(f"/api/v1/messages/{answer.pk}/feedback/", {"value": value, "reason": "bad"},
                                    format="json")
        assert response.status_code == 200, response.content


def cached_answer(first: Message) -> CacheEntry:
    """The entry the first answer was stored as (asserting it was, so a miss later proves something)."""
    return CacheEntry.objects.get(message=first)


def test_one_visitors_thumbs_down_spares_the_others_but_is_never_served_to_them_again(kb):
    alice, bob, carol = Visitor(), Visitor(), Visitor()
    entry = cached_answer(alice.ask())
    served = bob.ask()
    assert served.reuse == Message.Reuse.CACHE

    bob.vote(served)

    assert ReviewItem.objects.filter(message=served).exists()  # a trainer still sees it
    assert carol.ask().reuse == Message.Reuse.CACHE
    again = bob.ask()
    assert again.reuse == Message.Reuse.NONE and again.text  # a new answer, not the one he voted down
    entry.refresh_from_db()
    assert entry.blocked_at is None


def test_the_visitor_whose_answer_was_cached_is_not_served_it_again_after_voting_it_down(kb):
    alice, bob = Visitor(), Visitor()
    first = alice.ask()
    cached_answer(first)
    alice.vote(first)
    assert alice.ask().reuse == Message.Reuse.NONE
    assert bob.ask().reuse == Message.Reuse.CACHE


def test_a_vote_on_a_paraphrase_served_from_an_entry_keeps_the_whole_entry_from_that_visitor(kb):
    CacheCalibration.objects.create(  # lets a close paraphrase through (the near-duplicate tier)
        params={"min_similarity": 0.9, "min_gap": 0.1, "min_support": 3, "near_duplicate": 0.8,
                "near_duplicate_gap": 0.0, "neighbours": 10},
        target_precision=0.99, precision=0.99, hit_rate=0.5, labelled=100, source="test")
    reuse_selectors.forget_guard_params()
    alice, bob, carol = Visitor(), Visitor(), Visitor()
    entry = cached_answer(alice.ask())
    served = bob.ask("What is the right way to do a barbell squat?")
    assert served.reuse_details["level"] == "semantic"  # served, and stored as an alias of the entry

    bob.vote(served)

    scope = Scope(entry.space_id, 384, entry.prompt_version_id, entry.kb_version, entry.language)
    assert reuse_selectors.lookup(scope, SQUAT, None, visitor_id=bob.id) is None
    hit = reuse_selectors.lookup(scope, SQUAT, None, visitor_id=carol.id)
    assert hit is not None and hit.entry.pk == entry.pk


def test_thumbs_down_from_enough_distinct_visitors_blocks_the_entry_for_everyone(kb, settings):
    settings.CACHE_BLOCK_DOWNVOTES = 3
    alice, bob, carol, dave = Visitor(), Visitor(), Visitor(), Visitor()
    first = alice.ask()
    entry = cached_answer(first)
    alice.vote(first)  # voted down where it was stored from
    bob.vote(bob.ask())  # and where it was served
    entry.refresh_from_db()
    assert entry.blocked_at is None
    assert dave.ask().reuse == Message.Reuse.CACHE  # two votes are not enough

    carol.vote(carol.ask())

    entry.refresh_from_db()
    assert entry.blocked_at is not None and "3 visitors" in entry.blocked_reason
    assert dave.ask().reuse == Message.Reuse.NONE
    assert not CacheEntry.objects.filter(blocked_at__isnull=True).exists()  # nor cached again in its place


def test_the_entrys_admin_page_shows_how_many_visitors_voted_it_down(kb, settings):
    settings.CACHE_BLOCK_DOWNVOTES = 3
    alice, bob = Visitor(), Visitor()
    entry = cached_answer(alice.ask())
    bob.vote(bob.ask())
    staff = Client()
    staff.force_login(User.objects.create_superuser("root", "root@example.com", "not-used"))
    page = staff.get(reverse("admin:chat_cacheentry_change", args=[entry.pk])).content.decode()
    assert "1 visitor(s); blocked for everyone at 3" in page


def test_one_visitor_voting_many_times_does_not_block_the_entry(kb, settings):
    settings.CACHE_BLOCK_DOWNVOTES = 2
    alice, mallory, bob = Visitor(), Visitor(), Visitor()
    entry = cached_answer(alice.ask())
    served = [mallory.ask() for _ in range(3)]
    assert all(answer.reuse == Message.Reuse.CACHE for answer in served)

    for answer in served:
        mallory.vote(answer)
    mallory.vote(served[0], "up")
    mallory.vote(served[0])

    entry.refresh_from_db()
    assert entry.blocked_at is None
    assert bob.ask().reuse == Message.Reuse.CACHE


def test_a_thumbs_down_changed_to_a_thumbs_up_no_longer_counts(kb, settings):
    settings.CACHE_BLOCK_DOWNVOTES = 2
    alice, bob, carol = Visitor(), Visitor(), Visitor()
    entry = cached_answer(alice.ask())
    served = bob.ask()
    bob.vote(served)
    bob.vote(served, "up")
    assert bob.ask().reuse == Message.Reuse.CACHE  # he changed his mind: served again

    carol.vote(carol.ask())
    entry.refresh_from_db()
    assert entry.blocked_at is None  # one vote standing, of two needed


def test_a_trainers_rejection_blocks_the_entry_at_once(kb):
    alice, bob, carol = Visitor(), Visitor(), Visitor()
    entry = cached_answer(alice.ask())
    served = bob.ask()
    bob.vote(served)
    trainer = TrainerFactory.create()
    item = review_item_claim(item=ReviewItem.objects.get(message=served), user=trainer)

    review_item_reject(item=item, reviewer=trainer, reason="wrong")

    entry.refresh_from_db()
    assert entry.blocked_at is not None and entry.blocked_reason == "rejected in review"
    assert carol.ask().reuse == Message.Reuse.NONE


def test_a_rejection_does_not_block_when_the_setting_says_so(kb, settings):
    settings.CACHE_BLOCK_ON_REJECTION = False
    alice, bob = Visitor(), Visitor()
    first = alice.ask()
    entry = cached_answer(first)
    trainer = TrainerFactory.create()
    item = ReviewItem.objects.create(message=first, priority=0.5, reason="test")

    review_item_reject(item=review_item_claim(item=item, user=trainer), reviewer=trainer, reason="wrong")

    entry.refresh_from_db()
    assert entry.blocked_at is None
    assert bob.ask().reuse == Message.Reuse.CACHE


def test_the_eviction_job_deletes_blocked_entries_past_their_keep_time_and_keeps_the_rest(settings):
    settings.CACHE_BLOCKED_KEEP_DAYS = 30
    now = timezone.now()
    old = CacheEntryFactory.create(blocked_at=now - timedelta(days=31), blocked_reason="thumbs down from 3 visitors")
    old_alias = CacheEntryFactory.create(alias_of=old, blocked_at=old.blocked_at)
    fresh = CacheEntryFactory.create(blocked_at=now - timedelta(days=29), blocked_reason="rejected in review")
    servable = CacheEntryFactory.create()

    assert answer_cache_blocked_evict() == 2

    assert set(CacheEntry.objects.values_list("pk", flat=True)) == {fresh.pk, servable.pk}
    assert not CacheEntry.objects.filter(pk__in=[old.pk, old_alias.pk]).exists()
