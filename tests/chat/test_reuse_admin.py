"""Admin for reuse: cache entries (search, bulk invalidate), approved answers (create, CSV import),
the reuse shown on each answer, and cost per day and model with the savings."""

from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from chat.models import CacheEntry, Conversation, Message
from monitoring.models import AnswerFact
from review.models import ApprovedAnswer

pytestmark = pytest.mark.django_db


def entry(question: str, **extra) -> CacheEntry:
    return CacheEntry.objects.create(question=question, question_hash=question, answer="a", answer_key=question,
                                     space_id=1, embedding=[1.0, 0.0], kb_version=1, language="en", **extra)


def test_cache_entries_can_be_searched_and_invalidated_in_bulk(admin_client):
    squat, plank = entry("how do I squat"), entry("how do I plank")
    alias = entry("squat how", alias_of=squat)
    page = admin_client.get("/admin/chat/cacheentry/?q=squat")
    assert page.status_code == 200 and b"how do I squat" in page.content and b"how do I plank" not in page.content

    response = admin_client.post(
        "/admin/chat/cacheentry/", {"action": "block_selected", "_selected_action": [squat.pk]}
    )
    assert response.status_code == 302
    assert set(CacheEntry.objects.filter(blocked_at__isnull=False).values_list("pk", flat=True)) == {squat.pk, alias.pk}
    assert CacheEntry.objects.get(pk=plank.pk).blocked_at is None


def test_an_approved_answer_created_in_admin_is_embedded_at_once(admin_client, kb):
    response = admin_client.post("/admin/review/approvedanswer/add/", {
        "question": "How do I do a plank?", "answer": "Hold a straight line.", "language": "en", "scope": "",
        "is_active": "on", "chunk_ids": "", "sources": "[]",
    })
    assert response.status_code == 302, response.content[:2000]
    approved = ApprovedAnswer.objects.get()
    assert approved.embedding is not None and approved.space_id and approved.created_by.is_superuser


def test_approved_answers_import_from_csv_all_or_nothing(admin_client, kb):
    good = b"question,answer,language,expires_at\nHow do I plank?,Hold it.,en,2030-01-01\nWie plank?,Halten.,de,\n"
    response = admin_client.post("/admin/review/approvedanswer/import/",
                                 {"file": SimpleUploadedFile("a.csv", good, "text/csv")})
    assert response.status_code == 302
    assert ApprovedAnswer.objects.filter(embedding__isnull=False).count() == 2

    bad = b"question,answer\nHow do I squat?,Sit back.\n,missing question\n"
    response = admin_client.post("/admin/review/approvedanswer/import/",
                                 {"file": SimpleUploadedFile("b.csv", bad, "text/csv")})
    assert response.status_code == 200 and b"line 3: question and answer must not be empty" in response.content
    assert ApprovedAnswer.objects.count() == 2


def test_each_answer_shows_its_reuse_and_the_cost_page_shows_savings(admin_client):
    conversation = Conversation.objects.create(visitor_id="v")
    served = entry("how do I squat")
    message = Message.objects.create(conversation=conversation, sequence=2, role="assistant", text="a",
                                     reuse="cache", reused_entry=served, reuse_details={"level": "semantic"},
                                     cost_avoided=Decimal("0.002"))
    AnswerFact.objects.create(message_id=message.pk, conversation_id=conversation.pk, status="complete",
                              model="gpt-4o-mini", reuse="cache", cost_avoided=Decimal("0.002"))
    AnswerFact.objects.create(message_id="00000000-0000-0000-0000-000000000001", conversation_id=conversation.pk,
                              status="complete", model="gpt-4o-mini", cost=Decimal("0.003"), tokens_in=900)

    listing = admin_client.get("/admin/chat/message/")
    assert f"/admin/chat/cacheentry/{served.pk}/change/".encode() in listing.content

    page = admin_client.get("/admin/monitoring/answerfact/costs/?days=7")
    assert page.status_code == 200
    content = page.content.decode()
    assert "gpt-4o-mini" in content and "0.0030" in content and "0.0020" in content and "50.0 %" in content
    assert admin_client.get("/admin/monitoring/answerfact/costs/?days=abc").status_code == 200
