"""A visitor erases all of its data through the API: no table and no Redis key names it or its conversations
afterwards, its token is refused, and an erasure record is left that holds counts, not data."""

from __future__ import annotations

import operator
from functools import reduce

import pytest
import redis
from django.apps import apps
from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Cast
from pgvector.django import VectorField

from chat.models import Conversation, ErasureRecord
from chat.privacy import visitor_erased, visitor_hash
from review.models import ApprovedAnswer
from tests.privacy.test_export import Footprint, ask, visitor_client, visitor_with_everything

pytestmark = pytest.mark.django_db(transaction=True)
_SEARCHED = (models.CharField, models.TextField, models.UUIDField, models.JSONField, ArrayField, models.ForeignKey)


@pytest.fixture
def footprint(kb, settings) -> Footprint:
    return visitor_with_everything(settings)


def rows_naming(needles: set[str]) -> list[str]:
    """Every row of every model with one of `needles` in a text, id, JSON or array field."""
    found = []
    for model in apps.get_models():
        for model_field in model._meta.concrete_fields:
            if not isinstance(model_field, _SEARCHED) or isinstance(model_field, VectorField):
                continue
            as_text = model.objects.annotate(_as_text=Cast(model_field.attname, models.TextField()))
            if not as_text.filter(_naming_any(needles)).exists():  # one query a field; each needle only if one is
                continue
            found += [f"{model._meta.label}.{model_field.name} {needle}" for needle in needles
                      if as_text.filter(_as_text__icontains=needle).exists()]
    return found


def _naming_any(needles: set[str]) -> Q:
    return reduce(operator.or_, (Q(_as_text__icontains=needle) for needle in needles))


def redis_keys_naming(needles: set[str]) -> list[str]:
    found = []
    for url in {settings.REDIS_URL, settings.CACHE_REDIS_URL}:
        client = redis.Redis.from_url(url, decode_responses=True)
        found += [key for key in client.scan_iter(count=1000) if any(n in key for n in needles)]
        tickets = list(client.scan_iter(match="spotter:ticket:*"))
        found += [k for k, v in zip(tickets, client.mget(tickets) if tickets else [], strict=True) if v in needles]
    return found


def test_the_footprint_is_found_everywhere_before_the_erasure(footprint):
    """The checks below would see the data: it is in many tables and in Redis before."""
    models_found = {row.split(" ")[0].rsplit(".", 1)[0] for row in rows_naming(footprint.needles)}

    assert {"chat.Conversation", "chat.Message", "chat.VisitorProfile", "monitoring.AnswerFact",
            "monitoring.HandoffFact", "review.ReviewItem", "review.Handoff", "experiments.ShadowAnswer",
            "monitoring.TopicCluster", "chat.CacheVote"} <= models_found
    assert len(redis_keys_naming(footprint.needles)) >= 5


def test_erasure_leaves_no_row_and_no_redis_key_naming_the_visitor_or_its_conversations(footprint):
    response = footprint.client.delete("/api/v1/visitors/me/")

    assert response.status_code == 200
    assert response.json()["erased"]["chat.Conversation"] == 2
    assert rows_naming(footprint.needles) == []
    assert redis_keys_naming(footprint.needles) == []
    assert not ApprovedAnswer.objects.filter(pk=footprint.approved_answer_id).exists()


def test_the_erasure_record_holds_counts_and_a_hash_never_the_data(footprint):
    footprint.client.delete("/api/v1/visitors/me/")

    record = ErasureRecord.objects.get()
    assert record.requested_by == ErasureRecord.Requester.VISITOR and record.staff_user is None
    assert record.visitor_hash == visitor_hash(footprint.visitor_id) != footprint.visitor_id
    assert record.counts["chat.Message"] == len(footprint.message_ids)
    assert record.counts["review.ApprovedAnswer"] == 1 and record.counts["chat.CacheEntry"] >= 1
    assert record.counts["redis"] >= 5


def test_the_token_is_refused_after_the_erasure(footprint):
    footprint.client.delete("/api/v1/visitors/me/")

    assert visitor_erased(footprint.visitor_id)
    assert footprint.client.get("/api/v1/profile/").status_code == 401
    assert footprint.client.post("/api/v1/visitors/ticket/").status_code == 401
    assert footprint.client.post("/api/v1/visitors/refresh/").status_code == 401


def test_another_visitors_data_stays(footprint):
    other, other_id = visitor_client()
    conversation = other.post("/api/v1/conversations/").json()["id"]
    ask(other, conversation, "How do I do a pushup?")
    shared = ApprovedAnswer.objects.create(question="How do I rest?", answer="Sleep.")

    footprint.client.delete("/api/v1/visitors/me/")

    assert Conversation.objects.filter(visitor_id=other_id).count() == 1
    assert ApprovedAnswer.objects.filter(pk=shared.pk).exists()
    assert len(other.get(f"/api/v1/conversations/{conversation}/messages/").json()) == 2
    assert not visitor_erased(other_id)


def test_a_visitor_without_data_can_erase_too(db):
    client, visitor_id = visitor_client()

    assert client.delete("/api/v1/visitors/me/").status_code == 200
    assert ErasureRecord.objects.filter(visitor_hash=visitor_hash(visitor_id)).exists()


def test_erasure_needs_a_visitor_token(db):
    from rest_framework.test import APIClient

    assert APIClient().delete("/api/v1/visitors/me/").status_code == 401
    assert not ErasureRecord.objects.exists()

