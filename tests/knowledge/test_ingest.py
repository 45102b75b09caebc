import json

import pytest
from django.core.management import CommandError, call_command

from knowledge import services
from knowledge.models import Chunk, Document, Source
from knowledge.parsers import IngestError
from knowledge.selectors import kb_version
from tests.knowledge.files import HTML, MARKDOWN, TEXT, write_pdf

pytestmark = pytest.mark.django_db


def ingest(path, **kwargs):
    source = services.source_upsert(name=kwargs.pop("name", path.name), uri=str(path), **kwargs)
    services.source_ingest(source_id=source.pk)
    source.refresh_from_db()
    return source


def chunks_of(source):
    return list(Chunk.objects.filter(document__source=source).order_by("ordinal").values_list("heading", "text"))


def test_markdown_chunks_follow_its_headings_and_keep_list_items_whole(tmp_path, settings):
    settings.KNOWLEDGE_CHUNK_TOKENS = 30  # small enough that each section is its own chunk
    path = tmp_path / "swing.md"
    path.write_text(MARKDOWN)
    source = ingest(path)
    assert (source.status, source.format, source.document_count) == ("ready", "markdown", 1)
    assert Document.objects.get(source=source).title == "Kettlebell Swing"
    chunks = chunks_of(source)
    headings = [heading for heading, _ in chunks]
    assert headings[0] == "Kettlebell Swing"
    assert "Kettlebell Swing › Setup" in headings and "Kettlebell Swing › Common mistakes" in headings
    setup = "\n\n".join(text for heading, text in chunks if heading.endswith("Setup"))
    assert "- Hinge at the hips, not the knees." in setup and "- Keep a neutral spine." in setup
    assert all(not text.startswith("#") for _, text in chunks)  # headings live in the heading path


def test_html_keeps_the_article_and_drops_navigation_footer_and_scripts(tmp_path):
    path = tmp_path / "farmers-walk.html"
    path.write_text(HTML)
    source = ingest(path)
    document = Document.objects.get(source=source)
    assert document.title == "Farmer's Walk"
    text = " ".join(text for _, text in chunks_of(source))
    assert "builds grip strength" in text and "short, quick steps" in text and "Look straight ahead" in text
    for boilerplate in ("Shop", "newsletter", "Copyright", "Cookie", "trackVisitor"):
        assert boilerplate not in text
    assert any(heading.endswith("Technique") for heading, _ in chunks_of(source))


def test_pdf_text_is_extracted_with_its_title_and_rejoined_lines(tmp_path):
    long_sentence = "Hold the plank with a straight line from your head to your heels " * 3
    path = write_pdf(tmp_path / "plank.pdf", "Plank handbook", [long_sentence.strip() + ".", "Breathe slowly."])
    source = ingest(path)
    assert source.format == "pdf" and Document.objects.get(source=source).title == "Plank handbook"
    text = chunks_of(source)[0][1]
    assert "from your head to your heels Hold the plank" in text  # the PDF's line breaks are gone
    assert "Breathe slowly." in text


def test_plain_text_takes_its_first_line_as_title(tmp_path):
    path = tmp_path / "recovery.txt"
    path.write_text(TEXT)
    source = ingest(path)
    assert Document.objects.get(source=source).title == "Recovery basics"
    assert "1.6 grams per kilogram" in chunks_of(source)[0][1]


def test_csv_and_json_records_become_documents_through_their_mapping(tmp_path):
    mapping = {"id": "sku", "title": "name", "body": ["description"], "url": "https://shop.example/p/{sku}",
               "metadata": ["price"], "tags": ["category"]}
    csv_path = tmp_path / "products.csv"
    csv_path.write_text("sku,name,description,price,category\n"
                        "k1,Kettlebell 16 kg,Cast iron kettlebell with a wide handle.,49,weights\n"
                        "m1,Yoga mat,Non-slip mat for floor work.,25,mats\n")
    source = ingest(csv_path, mapping=mapping)
    kettlebell = Document.objects.get(source=source, external_id="k1")
    assert (kettlebell.title, kettlebell.url) == ("Kettlebell 16 kg", "https://shop.example/p/k1")
    assert kettlebell.metadata == {"price": "49"} and kettlebell.tags == ["weights"]
    json_path = tmp_path / "products.json"
    json_path.write_text(json.dumps([{"sku": "b1", "name": "Bench", "description": "Flat bench.", "price": 99,
                                      "category": ["benches", "weights"]}]))
    source = ingest(json_path, mapping=mapping)
    assert Document.objects.get(source=source).tags == ["benches", "weights"]


def test_long_text_is_chunked_between_sentences_with_overlap(tmp_path, settings):
    settings.KNOWLEDGE_CHUNK_TOKENS, settings.KNOWLEDGE_CHUNK_OVERLAP_TOKENS = 40, 12
    sentences = [f"Sentence number {n} talks about squat depth and knee tracking." for n in range(12)]
    path = tmp_path / "long.txt"
    path.write_text(" ".join(sentences))
    texts = [text for _, text in chunks_of(ingest(path))]
    assert len(texts) > 2
    for text in texts:  # every chunk is whole sentences
        assert text.startswith("Sentence number") and text.endswith("tracking.")
    assert texts[0].split("\n\n")[-1] == texts[1].split("\n\n")[0]  # the overlap


def test_reingesting_unchanged_content_changes_nothing(tmp_path):
    path = tmp_path / "swing.md"
    path.write_text(MARKDOWN)
    source = ingest(path)
    chunk_ids, version = list(Chunk.objects.values_list("pk", flat=True)), kb_version()
    report = services.source_ingest(source_id=source.pk)
    assert (report.created, report.updated, report.unchanged) == (0, 0, 1)
    assert list(Chunk.objects.values_list("pk", flat=True)) == chunk_ids and kb_version() == version


def test_a_changed_document_replaces_its_chunks_and_bumps_the_version(tmp_path):
    path = tmp_path / "swing.md"
    path.write_text(MARKDOWN)
    source = ingest(path)
    old_ids, version = set(Chunk.objects.values_list("pk", flat=True)), kb_version()
    path.write_text(MARKDOWN.replace("shoulder-width", "hip-width"))
    report = services.source_ingest(source_id=source.pk)
    assert report.updated == 1 and kb_version() > version
    texts = " ".join(Chunk.objects.values_list("text", flat=True))
    assert "hip-width" in texts and "shoulder-width" not in texts
    assert not old_ids & set(Chunk.objects.values_list("pk", flat=True))


def test_records_gone_from_the_file_are_removed(tmp_path):
    mapping = {"id": "id", "title": "name"}
    path = tmp_path / "r.json"
    path.write_text(json.dumps([{"id": 1, "name": "Row"}, {"id": 2, "name": "Curl"}]))
    source = ingest(path, mapping=mapping)
    path.write_text(json.dumps([{"id": 1, "name": "Row"}]))
    report = services.source_ingest(source_id=source.pk)
    assert report.removed == 1 and list(Document.objects.values_list("title", flat=True)) == ["Row"]


def test_deleting_a_source_removes_its_chunks_and_bumps_the_version(tmp_path):
    path = tmp_path / "recovery.txt"
    path.write_text(TEXT)
    source, version = ingest(path), kb_version()
    services.source_delete(source=source)
    assert Chunk.objects.count() == 0 and Document.objects.count() == 0 and kb_version() > version


BAD_FILES = [
    ("notes.docx", b"PK\x03\x04 word", "unsupported file type"),
    ("empty.txt", b"", "the file is empty"),
    ("binary.txt", b"\x00\x01\x02\x03" * 50, "not a text file"),
    ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage", "not a readable PDF"),
    ("blank.md", b"   \n\n  ", "no text found"),
]


@pytest.mark.parametrize(("name", "data", "message"), BAD_FILES)
def test_bad_files_fail_the_source_with_a_clear_error_and_touch_nothing_else(tmp_path, name, data, message):
    good = tmp_path / "recovery.txt"
    good.write_text(TEXT)
    ingest(good)
    before = list(Chunk.objects.values_list("pk", "text"))
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(IngestError, match=message):
        source = services.source_upsert(name=name, uri=str(path))
        services.source_ingest(source_id=source.pk)
    if Source.objects.filter(name=name).exists():  # an unsupported type is refused before a row exists
        failed = Source.objects.get(name=name)
        assert failed.status == "failed" and message in failed.error and failed.chunk_count == 0
    assert list(Chunk.objects.values_list("pk", "text")) == before


def test_a_file_over_the_size_limit_is_refused(tmp_path, settings):
    settings.KNOWLEDGE_MAX_FILE_MB = 0.001
    path = tmp_path / "big.txt"
    path.write_text("Squat deep. " * 200)
    with pytest.raises(IngestError, match="over the 0.001 MB limit"):
        ingest(path)
    assert Chunk.objects.count() == 0


def test_records_that_do_not_match_the_mapping_are_refused_whole(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("id,name\n1,Row\n2,\n")
    with pytest.raises(IngestError, match="record 1 has no 'name'"):
        ingest(path, mapping={"id": "id", "title": "name"})
    with pytest.raises(IngestError, match="no record has: description"):
        ingest(path, name="other", mapping={"id": "id", "title": "name", "body": ["description"]})
    with pytest.raises(IngestError, match="needs a field mapping"):
        ingest(path, name="third")
    assert Document.objects.count() == 0


def test_the_ingest_command_takes_files_and_folders(tmp_path, capsys):
    folder = tmp_path / "docs"
    (folder / "guides").mkdir(parents=True)
    (folder / "guides" / "swing.md").write_text(MARKDOWN)
    (folder / "farmers-walk.html").write_text(HTML)
    (folder / "ignored.bin").write_bytes(b"\x00")
    (tmp_path / "recovery.txt").write_text(TEXT)
    call_command("ingest", str(folder), str(tmp_path / "recovery.txt"), "--tag", "guides", verbosity=0)
    names = set(Source.objects.values_list("name", flat=True))
    assert names == {"docs/guides/swing.md", "docs/farmers-walk.html", "recovery.txt"}
    assert set(Source.objects.values_list("status", flat=True)) == {"ready"}
    assert all(d.tags == ["guides"] for d in Document.objects.all())
    assert "1 new" in capsys.readouterr().out


def test_the_ingest_command_reports_a_bad_file_and_still_loads_the_others(tmp_path):
    (tmp_path / "recovery.txt").write_text(TEXT)
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 nonsense")
    with pytest.raises(CommandError, match="1 of 2 files failed"):
        call_command("ingest", str(tmp_path / "recovery.txt"), str(tmp_path / "broken.pdf"), verbosity=0)
    assert Source.objects.get(name="recovery.txt").status == "ready"
    assert "not a readable PDF" in Source.objects.get(name="broken.pdf").error


def test_a_cited_document_has_a_readable_page(kb, client):
    document = Document.objects.get(title="Plank")
    page = client.get(f"/kb/documents/{document.pk}/")
    assert page.status_code == 200 and b"Plank" in page.content


def test_answers_in_a_row_read_the_knowledge_base_version_once_and_a_bump_at_once(django_assert_num_queries):
    with django_assert_num_queries(1):
        version = [kb_version() for _ in range(5)][-1]
    services.kb_version_bump()
    assert kb_version() == version + 1
