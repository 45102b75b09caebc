import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from knowledge.models import Chunk, Document, Source
from tests.factories import OperatorFactory, TrainerFactory
from tests.knowledge.files import MARKDOWN, write_pdf

pytestmark = pytest.mark.django_db
URL = "/api/v1/knowledge/sources/"


@pytest.fixture
def operator_client(client, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the ingest task runs in-process, as the worker would
    client.force_login(OperatorFactory.create())
    return client


def upload(client, filename, data, **fields):
    return client.post(URL, {"file": SimpleUploadedFile(filename, data), **fields})


def test_an_operator_uploads_a_file_and_it_is_indexed_by_the_task(operator_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(operator_client, "swing.md", MARKDOWN.encode(), tags=["guides"])
    assert response.status_code == 202 and response.json()["status"] == "queued"
    source = operator_client.get(f"{URL}{response.json()['id']}/").json()
    assert (source["status"], source["format"], source["document_count"]) == ("ready", "markdown", 1)
    assert source["chunk_count"] == Chunk.objects.count() > 0 and source["progress_percent"] == 100
    assert Document.objects.get().tags == ["guides"]


def test_a_csv_upload_uses_its_mapping(operator_client, django_capture_on_commit_callbacks):
    mapping = json.dumps({"id": "sku", "title": "name", "body": ["description"]})
    with django_capture_on_commit_callbacks(execute=True):
        data = b"sku,name,description\nk1,Kettlebell,Cast iron.\n"
        response = upload(operator_client, "p.csv", data, mapping=mapping)
    assert response.status_code == 202
    assert Document.objects.get().title == "Kettlebell"


@pytest.mark.parametrize(("name", "data", "fields", "message"), [
    ("notes.docx", b"PK\x03\x04", {}, "unsupported file type"),
    ("empty.txt", b"", {}, "empty"),
    ("broken.pdf", b"%PDF-1.4 nonsense", {}, "not a readable PDF"),
    ("p.csv", b"sku,name\nk1,Kettlebell\n", {"mapping": '{"title": "title"}'}, "no record has: title"),
    ("p.csv", b"sku,name\nk1,Kettlebell\n", {}, "needs a field mapping"),
])
def test_a_bad_upload_gets_a_400_with_the_error_and_the_failed_source_row(operator_client, name, data, fields, message):
    response = upload(operator_client, name, data, **fields)  # the source is named after the file
    body = response.json()
    assert response.status_code == 400 and body["code"] == "ingest_failed" and message in body["message"]
    assert body["source"]["status"] == "failed" and message in body["source"]["error"]
    assert Chunk.objects.count() == 0


def test_an_upload_over_the_size_limit_is_refused(operator_client, settings):
    settings.KNOWLEDGE_MAX_FILE_MB = 0.001
    response = upload(operator_client, "big.txt", b"Squat deep. " * 200)
    assert response.status_code == 400 and "over the 0.001 MB limit" in response.json()["message"]


def test_a_bad_reupload_keeps_the_existing_index(operator_client, tmp_path, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        good = write_pdf(tmp_path / "plank.pdf", "Plank", ["Hold a straight line from head to heels."])
        upload(operator_client, "plank.pdf", good.read_bytes(), name="handbook")
    chunks = list(Chunk.objects.values_list("pk", flat=True))
    response = upload(operator_client, "plank.pdf", b"%PDF-1.4 broken", name="handbook")
    assert response.status_code == 400 and Source.objects.get(name="handbook").status == "failed"
    assert list(Chunk.objects.values_list("pk", flat=True)) == chunks  # still searchable as before


def test_reindex_and_delete(operator_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        source_id = upload(operator_client, "swing.md", MARKDOWN.encode()).json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(f"{URL}{source_id}/reindex/")
    assert response.status_code == 202 and Source.objects.get(pk=source_id).status == "ready"
    assert operator_client.delete(f"{URL}{source_id}/").status_code == 204
    assert Chunk.objects.count() == 0 and not Source.objects.exists()


def test_visitors_and_trainers_cannot_manage_sources(client, settings):
    assert client.get(URL).status_code in (401, 403)
    client.force_login(TrainerFactory.create())
    assert upload(client, "swing.md", MARKDOWN.encode()).status_code == 403


def test_the_admin_upload_form_queues_the_source(admin_client, settings, django_capture_on_commit_callbacks):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/admin/knowledge/source/add/", {
            "name": "swing", "upload": SimpleUploadedFile("swing.md", MARKDOWN.encode()), "format": "",
            "mapping": "", "language": "en", "tags": "",
        })
    assert response.status_code == 302
    source = Source.objects.get(name="swing")
    assert source.status == "ready" and source.chunk_count > 0
    listing = admin_client.get("/admin/knowledge/source/").content.decode()
    assert "swing" in listing and 'value="100"' in listing  # the progress bar
    bad = admin_client.post("/admin/knowledge/source/add/", {
        "name": "bad", "upload": SimpleUploadedFile("x.pdf", b"%PDF-1 junk"), "language": "en", "tags": "",
    })
    assert bad.status_code == 200 and "not a readable PDF" in bad.content.decode()
