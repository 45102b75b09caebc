"""Files → documents. Each format keeps the structure the chunker needs (headings, paragraphs,
list items): Markdown as it is, HTML as Markdown (trafilatura drops navigation, footers and other
boilerplate), PDF as text per page (pypdf), CSV and JSON as one document per record through a
field mapping. Anything that cannot be read raises IngestError with a message for the operator.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings


class IngestError(ValueError):
    """Input that cannot be ingested; the message is shown to the operator as it is."""


@dataclass(frozen=True)
class DocumentDraft:
    external_id: str
    title: str
    content: str
    url: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    markdown: bool = False  # content is Markdown: the chunker follows its headings

    @property
    def content_hash(self) -> str:
        payload = json.dumps([self.title, self.url, self.content, self.metadata, sorted(self.tags)], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


EXTENSIONS = {
    ".txt": "text", ".text": "text",
    ".md": "markdown", ".markdown": "markdown",
    ".html": "html", ".htm": "html",
    ".pdf": "pdf",
    ".csv": "csv",
    ".json": "json",
}
MAPPED_FORMATS = {"csv", "json"}


def detect_format(filename: str, head: bytes = b"") -> str:
    if head.startswith(b"%PDF-"):
        return "pdf"
    fmt = EXTENSIONS.get(Path(filename).suffix.lower())
    if fmt is None:
        supported = ", ".join(sorted(EXTENSIONS))
        raise IngestError(f"{filename}: unsupported file type (supported: {supported})")
    return fmt


def check_size(filename: str, size: int) -> None:
    if size == 0:
        raise IngestError(f"{filename}: the file is empty")
    limit = settings.KNOWLEDGE_MAX_FILE_MB * 1024 * 1024
    if size > limit:
        raise IngestError(
            f"{filename}: {size / 1024 / 1024:.1f} MB is over the {settings.KNOWLEDGE_MAX_FILE_MB:g} MB limit "
            "(KNOWLEDGE_MAX_FILE_MB)"
        )


def parse_file(
    *, filename: str, data: bytes, fmt: str = "", mapping: dict[str, Any] | None = None
) -> list[DocumentDraft]:
    """Every document in one file; raises IngestError, never returns an empty list."""
    check_size(filename, len(data))
    fmt = fmt or detect_format(filename, data[:8])
    if fmt in MAPPED_FORMATS and not mapping:
        raise IngestError(f"{filename}: {fmt.upper()} needs a field mapping (title, body, ...)")
    parser = {"text": _parse_text, "markdown": _parse_markdown, "html": _parse_html, "pdf": _parse_pdf}
    if fmt in parser:
        drafts = [parser[fmt](filename, data)]
    elif fmt == "csv":
        drafts = records_to_drafts(_csv_records(filename, data), mapping or {}, filename)
    elif fmt == "json":
        drafts = records_to_drafts(_json_records(filename, data), mapping or {}, filename)
    else:
        raise IngestError(f"{filename}: unknown format {fmt!r}")
    if not drafts:
        raise IngestError(f"{filename}: no documents found")
    return drafts


# --- single-document formats ----------------------------------------------------------------------


def _decode(filename: str, data: bytes) -> str:
    if b"\x00" in data[:4096]:
        raise IngestError(f"{filename}: not a text file (binary content)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        if best is None:
            raise IngestError(f"{filename}: unreadable text (unknown encoding)") from None
        return str(best)


def _require_text(filename: str, text: str) -> str:
    if not text.strip():
        raise IngestError(f"{filename}: no text found")
    return text.strip()


def _title_from_name(filename: str) -> str:
    return re.sub(r"[_-]+", " ", Path(filename).stem).strip() or filename


def _parse_text(filename: str, data: bytes) -> DocumentDraft:
    text = _require_text(filename, _decode(filename, data))
    first_line = text.split("\n", 1)[0].strip()
    # A short first line followed by a blank line reads as the title.
    looks_like_title = len(first_line) <= 120 and "\n\n" in text[: len(first_line) + 3]
    title = first_line if looks_like_title else _title_from_name(filename)
    return DocumentDraft(external_id=Path(filename).name, title=title, content=text)


_H1 = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _parse_markdown(filename: str, data: bytes) -> DocumentDraft:
    text = _require_text(filename, _decode(filename, data))
    h1 = _H1.search(text)
    title = h1.group(1) if h1 else _title_from_name(filename)
    return DocumentDraft(external_id=Path(filename).name, title=title, content=text, markdown=True)


def _parse_html(filename: str, data: bytes) -> DocumentDraft:
    import trafilatura

    html = _decode(filename, data)
    markdown = trafilatura.extract(
        html, output_format="markdown", include_formatting=True, include_tables=True, include_comments=False,
        favor_recall=True,
    )
    text = _require_text(filename, markdown or "")
    metadata = trafilatura.extract_metadata(html)
    h1 = _H1.search(text)
    title = (metadata.title if metadata and metadata.title else None) or (h1.group(1) if h1 else None)
    return DocumentDraft(
        external_id=Path(filename).name, title=title or _title_from_name(filename), content=text, markdown=True
    )


def _parse_pdf(filename: str, data: bytes) -> DocumentDraft:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise IngestError(f"{filename}: the PDF is encrypted")
        pages = [_pdf_page_text(page.extract_text() or "") for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or ""
    except IngestError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise IngestError(f"{filename}: not a readable PDF ({exc})") from exc
    text = "\n\n".join(p for p in pages if p)
    if not text.strip():
        raise IngestError(f"{filename}: the PDF has no extractable text (scanned images need OCR first)")
    return DocumentDraft(
        external_id=Path(filename).name, title=title.strip() or _title_from_name(filename), content=text
    )


def _pdf_page_text(text: str) -> str:
    """PDF lines break mid-sentence; rejoin them, keeping blank lines and list items as breaks."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        merged: list[str] = []
        for line in lines:
            if merged and not _LIST_ITEM.match(line) and not merged[-1].endswith((".", ":", "!", "?")):
                merged[-1] = re.sub(r"-$", "", merged[-1]) + ("" if merged[-1].endswith("-") else " ") + line
            else:
                merged.append(line)
        paragraphs.append("\n".join(merged))
    return "\n\n".join(p for p in paragraphs if p)


_LIST_ITEM = re.compile(r"^([-*•▪◦]|\d+[.)])\s+")


# --- records with a field mapping -----------------------------------------------------------------


def _csv_records(filename: str, data: bytes) -> list[dict[str, Any]]:
    text = _decode(filename, data)
    try:
        reader = csv.DictReader(io.StringIO(text))
        records = list(reader)
    except csv.Error as exc:
        raise IngestError(f"{filename}: not a readable CSV file ({exc})") from exc
    if not reader.fieldnames:
        raise IngestError(f"{filename}: the CSV file has no header row")
    return records


def _json_records(filename: str, data: bytes) -> list[dict[str, Any]]:
    try:
        records = json.loads(_decode(filename, data))
    except json.JSONDecodeError as exc:
        raise IngestError(f"{filename}: not a readable JSON file ({exc})") from exc
    if not isinstance(records, list):
        raise IngestError(f"{filename}: expected a JSON array of records")
    return records


def mapping_validate(mapping: Any) -> dict[str, Any]:
    """A mapping names fields: "title" (required), "id", "url" (a template with {field} slots),
    "body" (fields joined as paragraphs), "facts" ({field: label}), "metadata" and "tags" (fields)."""
    if not isinstance(mapping, dict) or not isinstance(mapping.get("title"), str):
        raise IngestError('the mapping must be a JSON object with at least "title": "<field name>"')
    for key in ("body", "metadata", "tags"):
        if not isinstance(mapping.get(key, []), list):
            raise IngestError(f'mapping "{key}" must be a list of field names')
    if not isinstance(mapping.get("facts", {}), dict):
        raise IngestError('mapping "facts" must be an object {field: label}')
    return mapping


def _mapped_fields(mapping: dict[str, Any]) -> set[str]:
    fields = {mapping["title"], *mapping.get("body", []), *mapping.get("facts", {}), *mapping.get("metadata", [])}
    fields.update(mapping.get("tags", []))
    if mapping.get("id"):
        fields.add(mapping["id"])
    return fields


def records_to_drafts(records: list[Any], mapping: dict[str, Any], filename: str = "records") -> list[DocumentDraft]:
    """Turn records into documents with a mapping such as demo/exercises.mapping.json."""
    mapping = mapping_validate(mapping)
    if not records:
        raise IngestError(f"{filename}: no records")
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise IngestError(f"{filename}: record {index} is not an object")
    present = set().union(*(record.keys() for record in records))
    missing = sorted(_mapped_fields(mapping) - present)
    if missing:
        raise IngestError(
            f"{filename}: the mapping names fields that no record has: {', '.join(missing)} "
            f"(fields found: {', '.join(sorted(present)[:20])})"
        )
    return [_record_to_draft(index, record, mapping, filename) for index, record in enumerate(records)]


def _record_to_draft(index: int, record: dict[str, Any], mapping: dict[str, Any], filename: str) -> DocumentDraft:
    title = _text(record.get(mapping["title"]))
    if not title:
        raise IngestError(f"{filename}: record {index} has no '{mapping['title']}' (the title field)")
    facts = [
        f"{label}: {_text(record.get(name))}"
        for name, label in mapping.get("facts", {}).items()
        if _text(record.get(name))
    ]
    body = [_text(record.get(name), separator=" ") for name in mapping.get("body", [])]
    content = "\n\n".join(part for part in [title, "\n".join(facts), *body] if part)
    try:
        url = mapping["url"].format(**record) if mapping.get("url") else ""
    except (KeyError, IndexError, ValueError) as exc:
        raise IngestError(f"{filename}: record {index}: the url template needs {exc}") from exc
    tags = [str(t).strip() for name in mapping.get("tags", []) for t in _as_list(record.get(name)) if str(t).strip()]
    return DocumentDraft(
        external_id=_text(record.get(mapping.get("id", ""))) or str(index),
        title=title,
        content=content,
        url=url,
        metadata={name: record.get(name) for name in mapping.get("metadata", [])},
        tags=tuple(dict.fromkeys(tags)),
    )


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _text(value: Any, separator: str = ", ") -> str:
    """A field as text: lists are joined (facts with commas, body steps with spaces)."""
    if value is None:
        return ""
    if isinstance(value, list):
        return separator.join(str(v).strip() for v in value if v is not None)
    return str(value).strip()
