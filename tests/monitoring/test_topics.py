"""The drift report in admin: each kind's statistic against its threshold, the new-topic clusters, and the
one-click decisions on a cluster (send its answers to the review queue, mark a knowledge-base gap,
dismiss)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from chat.management.commands.demo_setup import Command as DemoSetup
from monitoring.models import AnswerFact, DriftCheck, TopicCluster
from review.models import ReviewItem
from tests.factories import AnswerFactory, TrainerFactory

pytestmark = pytest.mark.django_db

REPORT = reverse("admin:monitoring_drift_report")
AT = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture
def cluster() -> TopicCluster:
    """A new topic of three real answers, one of its questions with markup in it."""
    answers = AnswerFactory.create_batch(3)
    for answer, confidence in zip(answers, (0.2, 0.3, None), strict=True):
        AnswerFact.objects.create(message_id=answer.pk, conversation_id=answer.conversation_id, status="complete",
                                  confidence=confidence, question="How do I cancel?")
    return TopicCluster.objects.create(
        first_seen=AT - timedelta(hours=2), last_seen=AT, size=3, centroid=[1.0, 0.0, 0.0],
        trend=[{"window_end": "a", "size": 1}, {"window_end": "b", "size": 3}],
        examples=["How do I <b>cancel</b> my plan?", "Can I get a refund?"], message_ids=[a.pk for a in answers])


def decide(client: Client, cluster: TopicCluster, action: str):
    return client.post(reverse("admin:monitoring_topic_decide", args=[cluster.pk, action]))


def said(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_the_report_shows_each_kinds_statistic_against_its_threshold_and_the_clusters(admin_client, cluster):
    DriftCheck.objects.create(
        kind=DriftCheck.Kind.QUESTION, window_start=AT - timedelta(hours=1), window_end=AT,
        reference_start=AT - timedelta(days=8), reference_end=AT - timedelta(days=1), window_count=200,
        reference_count=2000, value=14, reference_value=1.2, statistic=6.4, evidence=9.25, threshold=8, alarm=True)

    page = admin_client.get(REPORT).content.decode()

    assert "Questions (new and grouped)" in page and "9.25 / 8.00" in page and "6.40" in page
    assert "alarm" in page and "<svg" in page
    assert "Coverage (weak knowledge-base match)" in page and "Not judged yet" in page
    assert "How do I &lt;b&gt;cancel&lt;/b&gt; my plan?" in page  # a visitor's words, never markup
    assert "1 → 3" in page
    assert "Send to review queue" in page and "Mark as knowledge-base gap" in page


def test_sending_a_cluster_to_the_review_queue_queues_its_answers_once(admin_client, cluster):
    response = decide(admin_client, cluster, "review")

    assert response.status_code == 302 and response.url == REPORT
    items = ReviewItem.objects.filter(message_id__in=cluster.message_ids)
    assert items.count() == 3
    assert all(item.reasons == [ReviewItem.Reason.NEW_TOPIC] for item in items)
    assert sorted(round(item.priority, 2) for item in items) == [0.5, 0.7, 0.8]  # 1 - confidence; unknown: 0.5
    cluster.refresh_from_db()
    assert cluster.status == TopicCluster.Status.SENT_TO_REVIEW and cluster.status_changed_by is not None
    assert "3 answers queued" in said(response)[0]

    again = decide(admin_client, cluster, "review")

    assert "already sent" in said(again)[-1]
    assert ReviewItem.objects.count() == 3


def test_answers_of_a_cluster_whose_conversation_was_deleted_are_left_out(admin_client, cluster):
    cluster.message_ids = [*cluster.message_ids, uuid4()]
    cluster.save()

    decide(admin_client, cluster, "review")

    assert ReviewItem.objects.count() == 3


def test_a_cluster_marked_as_a_knowledge_base_gap_says_so_and_a_dismissed_one_leaves_the_report(admin_client,
                                                                                                  cluster):
    decide(admin_client, cluster, "gap")
    cluster.refresh_from_db()
    assert cluster.status == TopicCluster.Status.KB_GAP
    page = admin_client.get(REPORT).content.decode()
    assert f'id="topic-{cluster.pk}"' in page and "Knowledge-base gap" in page

    decide(admin_client, cluster, "dismiss")

    cluster.refresh_from_db()
    assert cluster.status == TopicCluster.Status.DISMISSED
    assert f'id="topic-{cluster.pk}"' not in admin_client.get(REPORT).content.decode()
    assert "left alone" in said(decide(admin_client, cluster, "gap"))[-1]  # dismissed stays dismissed
    assert not ReviewItem.objects.exists()


def test_a_trainer_cannot_decide_on_a_cluster(cluster):
    DemoSetup()._groups()
    client = Client()
    client.force_login(TrainerFactory.create())

    response = decide(client, cluster, "review")

    assert response.status_code == 403
    cluster.refresh_from_db()
    assert cluster.status == TopicCluster.Status.EMERGING and not ReviewItem.objects.exists()


def test_the_decisions_take_a_post(admin_client, cluster):
    assert admin_client.get(reverse("admin:monitoring_topic_decide", args=[cluster.pk, "dismiss"])).status_code == 405
    cluster.refresh_from_db()
    assert cluster.status == TopicCluster.Status.EMERGING
