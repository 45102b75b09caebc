import json

import pytest
from django.core.management import CommandError, call_command

from knowledge.embeddings import embed_texts
from knowledge.models import Chunk, Document, Source
from knowledge.selectors import chunk_search_dense
from knowledge.services import DocumentDraft, documents_upsert, source_get_or_create

pytestmark = pytest.mark.django_db


def test_ingest_command_loads_json_records_and_skips_unchanged_ones(tmp_path, settings):
    records = [
        {"id": "a", "name": "Goblet Squat", "level": "beginner", "steps": ["Hold a kettlebell.", "Squat down."]},
        {"id": "b", "name": "Plank", "level": "beginner", "steps": ["Hold a straight line."]},
    ]
    data, mapping = tmp_path / "data.json", tmp_path / "mapping.json"
    data.write_text(json.dumps(records))
    mapping.write_text(json.dumps({"id": "id", "title": "name", "facts": {"level": "Level"}, "body": ["steps"]}))
    call_command("ingest", str(data), "--mapping", str(mapping), "--source", "mine", verbosity=0)
    source = Source.objects.get(name="mine")
    assert (source.status, source.document_count, source.chunk_count) == ("ready", 2, 2)
    expected = "Goblet Squat\n\nLevel: beginner\n\nHold a kettlebell. Squat down."
    assert Document.objects.get(external_id="a").content == expected

    before = list(Chunk.objects.values_list("pk", flat=True))
    call_command("ingest", str(data), "--mapping", str(mapping), "--source", "mine", verbosity=0)
    assert list(Chunk.objects.values_list("pk", flat=True)) == before  # unchanged: not re-embedded


def test_a_changed_document_replaces_its_chunks():
    source = source_get_or_create(name="s")
    documents_upsert(source=source, drafts=[DocumentDraft("x", "Curl", "Curl the dumbbell up.")])
    old = set(Chunk.objects.values_list("pk", flat=True))
    report = documents_upsert(source=source, drafts=[DocumentDraft("x", "Curl", "Curl the barbell up slowly.")])
    assert report.updated == 1
    chunks = list(Chunk.objects.all())
    assert len(chunks) == 1 and chunks[0].pk not in old and "barbell" in chunks[0].text


def test_ingest_rejects_malformed_input_with_a_clear_message(tmp_path):
    bad, mapping = tmp_path / "bad.json", tmp_path / "mapping.json"
    bad.write_text("{not json")
    mapping.write_text(json.dumps({"title": "name"}))
    with pytest.raises(CommandError, match="not a readable JSON file"):
        call_command("ingest", str(bad), "--mapping", str(mapping), verbosity=0)
    bad.write_text(json.dumps([{"title_missing": 1}]))
    with pytest.raises(CommandError, match="has no 'name'"):
        call_command("ingest", str(bad), "--mapping", str(mapping), verbosity=0)
    assert Document.objects.count() == 0


def test_dense_search_ranks_the_matching_exercise_first(kb):
    hits = chunk_search_dense(embedding=embed_texts(["how to do push ups"])[0], k=3)
    assert hits[0].title == "Pushups"
    assert hits[0].score > hits[-1].score and hits[0].url == f"/kb/documents/{hits[0].document_id}/"


def test_the_search_api_returns_hits(kb, client):
    response = client.get("/api/v1/knowledge/search", {"q": "plank core hold", "k": 2})
    assert response.status_code == 200
    assert response.json()[0]["title"] == "Plank" and len(response.json()) == 2
    assert client.get("/api/v1/knowledge/search").status_code == 400


def test_a_cited_document_has_a_readable_page(kb, client):
    document = Document.objects.get(title="Plank")
    page = client.get(f"/kb/documents/{document.pk}/")
    assert page.status_code == 200 and b"Plank" in page.content
