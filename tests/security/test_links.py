"""Only http(s) links: a `javascript:` (or `data:`, `vbscript:`…) URL from data renders in admin as
inert text, never as a link a superuser could click; ingestion and the document form refuse it."""

from __future__ import annotations

import html
import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from chat.models import Message
from chat.visitors import visitor_token_issue
from knowledge import services
from knowledge.links import safe_url, web_url
from knowledge.models import Document
from tests.factories import AnswerFactory, ApprovedAnswerFactory, DocumentFactory, ReviewItemFactory

pytestmark = pytest.mark.django_db

HOSTILE = [
    "javascript:alert(1)",
    "  JavaScript:alert(1)",
    "\x01javascript:alert(1)",
    "java\tscript:alert(1)",
    "\njavascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "javascript&colon;alert(1)",
    "https:alert(1)",  # no host
]
SOURCES = [{"n": i + 1, "title": f"Hostile {i}", "url": url} for i, url in enumerate(HOSTILE)] + [
    {"n": 90, "title": "Squat guide", "url": "https://example.com/squat"},
    {"n": 91, "title": "Own page", "url": "/knowledge/documents/7/"},
]
_HREF = re.compile(r"""href\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
_SCHEME = re.compile(r"([a-z][a-z0-9+.-]*):", re.IGNORECASE)
_EDGES = "".join(map(chr, range(33)))  # what a browser strips before reading a URL's scheme


def link_schemes(page: str) -> set[str]:
    """The schemes of every link on the page, read as a browser does (entities decoded, tabs,
    newlines and leading spaces or control characters ignored); relative links have none."""
    schemes = set()
    for match in _HREF.finditer(page):
        url = re.sub(r"[\t\n\r]", "", html.unescape(match.group(1) or match.group(2))).lstrip(_EDGES)
        scheme = _SCHEME.match(url)
        if scheme:
            schemes.add(scheme.group(1).lower())
    return schemes


def assert_only_web_links(page: str) -> None:
    assert link_schemes(page) <= {"http", "https"}
    assert "javascript" not in "".join(m.group(0).lower() for m in _HREF.finditer(page))


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "not-used"))
    return client


@pytest.mark.parametrize("url", HOSTILE + ["", "ftp://example.com/x", "mailto:a@example.com", None, 7])
def test_anything_but_an_http_url_or_a_site_path_is_not_a_link(url):
    assert safe_url(url) is None


def test_http_urls_and_site_paths_are_links():
    assert safe_url("https://example.com/a?b=1") == "https://example.com/a?b=1"
    assert safe_url(" HTTP://example.com/ ") == "HTTP://example.com/"
    assert safe_url("/knowledge/documents/3/") == "/knowledge/documents/3/"
    assert web_url("/knowledge/documents/3/") is None  # stored URLs are absolute


def test_a_conversation_page_shows_hostile_source_urls_as_text(admin_client):
    answer = AnswerFactory.create(sources=SOURCES)
    page = admin_client.get(reverse("admin:chat_conversation_change", args=[answer.conversation_id]))
    assert page.status_code == 200
    text = page.content.decode()
    assert_only_web_links(text)
    assert "Hostile 0" in text  # shown, as text
    assert '<a href="https://example.com/squat">Squat guide</a>' in text
    assert '<a href="/knowledge/documents/7/">Own page</a>' in text


def test_a_message_page_shows_hostile_source_urls_as_text(admin_client):
    answer = AnswerFactory.create(sources=SOURCES)
    page = admin_client.get(reverse("admin:chat_message_change", args=[answer.pk]))
    assert page.status_code == 200
    assert_only_web_links(page.content.decode())


def test_the_review_page_shows_hostile_source_urls_as_text(admin_client):
    item = ReviewItemFactory.create(message=AnswerFactory.create(sources=SOURCES))
    page = admin_client.get(reverse("admin:review_reviewitem_review", args=[item.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert_only_web_links(text)
    assert "Hostile 0" in text
    assert 'href="https://example.com/squat" target="_blank" rel="noopener">Squat guide</a>' in text


def test_an_approved_answer_page_shows_hostile_source_urls_as_text(admin_client):
    approved = ApprovedAnswerFactory.create(sources=SOURCES)
    page = admin_client.get(reverse("admin:review_approvedanswer_change", args=[approved.pk]))
    assert page.status_code == 200
    assert_only_web_links(page.content.decode())


def test_the_approved_answer_form_refuses_a_source_url_that_is_not_http(admin_client):
    approved = ApprovedAnswerFactory.create(sources=[{"title": "Guide", "url": "https://example.com/guide"}])
    change = reverse("admin:review_approvedanswer_change", args=[approved.pk])
    form = {"question": approved.question, "answer": approved.answer, "language": approved.language,
            "scope": approved.scope, "is_active": "on", "chunk_ids": ""}

    refused = admin_client.post(change, {**form, "sources": '[{"title": "Guide", "url": "JavaScript:alert(1)"}]'})

    assert refused.status_code == 200 and "not an http(s) URL" in refused.content.decode()
    approved.refresh_from_db()
    assert approved.sources == [{"title": "Guide", "url": "https://example.com/guide"}]
    saved = admin_client.post(change, {**form, "sources": '[{"title": "Guide", "url": "https://example.com/new"}]'})
    assert saved.status_code == 302
    approved.refresh_from_db()
    assert approved.sources == [{"title": "Guide", "url": "https://example.com/new"}]


def test_the_document_form_refuses_a_url_that_is_not_http(admin_client):
    document = DocumentFactory.create(url="https://example.com/old")
    change = reverse("admin:knowledge_document_change", args=[document.pk])
    form = {"source": document.source_id, "external_id": document.external_id, "title": document.title,
            "content": document.content, "metadata": "{}", "language": "en", "tags": "",
            "chunks-TOTAL_FORMS": "0", "chunks-INITIAL_FORMS": "0"}

    refused = admin_client.post(change, {**form, "url": " javascript:alert(1)"})

    assert refused.status_code == 200 and "not an http(s) URL" in refused.content.decode()
    document.refresh_from_db()
    assert document.url == "https://example.com/old"
    assert admin_client.post(change, {**form, "url": "https://example.com/new"}).status_code == 302
    document.refresh_from_db()
    assert document.url == "https://example.com/new"


def test_ingestion_drops_a_url_that_is_not_http_and_says_so(tmp_path):
    path = tmp_path / "products.csv"
    path.write_text("sku,name,link\nk1,Kettlebell,https://shop.example/k1\nx1,Trap,javascript:alert(1)\n"
                    "d1,Data,data:text/html;base64,PHNjcmlwdD4=\n")
    source = services.source_upsert(name="products", uri=str(path),
                                    mapping={"id": "sku", "title": "name", "url": "{link}"})

    report = services.source_ingest(source_id=source.pk)

    urls = dict(Document.objects.filter(source=source).values_list("external_id", "url"))
    assert urls == {"k1": "https://shop.example/k1", "x1": "", "d1": ""}  # all three ingested
    assert len(report.warnings) == 2 and "'x1'" in report.warnings[0] and "http(s)" in report.warnings[0]


@pytest.mark.django_db(transaction=True)
def test_a_document_stored_with_a_hostile_url_is_cited_by_its_page_on_this_site(kb):
    Document.objects.filter(source=kb).update(url="javascript:alert(1)")  # a row from before URLs were checked
    client = APIClient()
    client.credentials(HTTP_X_VISITOR_TOKEN=visitor_token_issue()[1])
    conversation = client.post("/api/v1/conversations/").json()
    response = client.post(f"/api/v1/conversations/{conversation['id']}/messages/",
                           {"text": "How do I do a barbell squat?"}, format="json")
    assert response.status_code == 201
    answer = Message.objects.get(pk=response.json()["answer"]["id"])
    pages = reverse("knowledge-document", args=[1]).removesuffix("1/")
    assert answer.sources and all(s["url"].startswith(pages) for s in answer.sources)
