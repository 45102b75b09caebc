"""Writes to the knowledge base: sources, documents and their chunks."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from .chunking import ChunkDraft, chunk_text
from .embeddings import embed_texts
from .models import Chunk, Document, Source


class IngestError(ValueError):
    """Input that cannot be ingested; the message is shown to the operator as it is."""


@dataclass(frozen=True)
class DocumentDraft:
    external_id: str
    title: str
    content: str
    url: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        payload = json.dumps([self.title, self.url, self.content, self.metadata], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class IngestReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    chunks_written: int = 0


def source_get_or_create(*, name: str, uri: str = "") -> Source:
    source, _ = Source.objects.get_or_create(name=name, defaults={"uri": uri})
    return source


def documents_upsert(
    *, source: Source, drafts: Sequence[DocumentDraft], progress: Callable[[int], None] | None = None
) -> IngestReport:
    """Index new and changed documents; skip unchanged ones (same content hash).

    Embedding happens before any transaction opens; each changed document then swaps its
    chunks in one transaction, so a search never sees it half-indexed.
    """
    report = IngestReport()
    known = dict(Document.objects.filter(source=source).values_list("external_id", "content_hash"))
    changed = [d for d in drafts if known.get(d.external_id) != d.content_hash]
    report.unchanged = len(drafts) - len(changed)
    for batch in _batches(changed, 64):
        chunked = [(draft, _chunk(draft)) for draft in batch]
        vectors = iter(embed_texts([_embedding_input(d, c) for d, chunks in chunked for c in chunks]))
        for draft, chunks in chunked:
            created = _document_replace(source, draft, [(c, next(vectors)) for c in chunks])
            report.created += created
            report.updated += not created
            report.chunks_written += len(chunks)
        if progress:
            progress(len(batch))
    source_refresh_counts(source=source)
    return report


def _batches(items: Sequence[DocumentDraft], size: int) -> Iterable[Sequence[DocumentDraft]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _chunk(draft: DocumentDraft) -> list[ChunkDraft]:
    return chunk_text(
        draft.content,
        max_tokens=settings.KNOWLEDGE_CHUNK_TOKENS,
        overlap_tokens=settings.KNOWLEDGE_CHUNK_OVERLAP_TOKENS,
    )


def _embedding_input(draft: DocumentDraft, chunk: ChunkDraft) -> str:
    # A chunk deep inside a document does not repeat its title; the embedding needs it.
    return chunk.text if chunk.text.startswith(draft.title) else f"{draft.title}\n{chunk.text}"


@transaction.atomic
def _document_replace(source: Source, draft: DocumentDraft, chunks: list[tuple[ChunkDraft, list[float]]]) -> bool:
    document, created = Document.objects.select_for_update().update_or_create(
        source=source,
        external_id=draft.external_id,
        defaults={
            "title": draft.title[:500],
            "url": draft.url,
            "content": draft.content,
            "content_hash": draft.content_hash,
            "metadata": draft.metadata,
        },
    )
    document.chunks.all().delete()
    Chunk.objects.bulk_create(
        Chunk(document=document, ordinal=i, text=c.text, token_count=c.token_count, embedding=vector)
        for i, (c, vector) in enumerate(chunks)
    )
    return created


def source_refresh_counts(*, source: Source) -> None:
    Source.objects.filter(pk=source.pk).update(
        document_count=Document.objects.filter(source=source).count(),
        chunk_count=Chunk.objects.filter(document__source=source).count(),
    )


# --- JSON records with a field mapping ------------------------------------------------------------


def records_to_drafts(records: Iterable[dict[str, Any]], mapping: dict[str, Any]) -> list[DocumentDraft]:
    """Turn JSON records into documents with a mapping such as demo/exercises.mapping.json.

    mapping keys: "id" and "title" (field names), "body" (fields joined as paragraphs),
    "facts" ({field: label}, rendered as "Label: value" lines so they are searchable),
    "metadata" (fields copied as they are), "url" (optional template with {field} slots).
    """
    drafts = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise IngestError(f"record {index} is not an object")
        drafts.append(_record_to_draft(index, record, mapping))
    return drafts


def _record_to_draft(index: int, record: dict[str, Any], mapping: dict[str, Any]) -> DocumentDraft:
    title = _text(record.get(mapping["title"]))
    if not title:
        raise IngestError(f"record {index} has no '{mapping['title']}' (the title field)")
    facts = [
        f"{label}: {_text(record.get(name))}"
        for name, label in mapping.get("facts", {}).items()
        if _text(record.get(name))
    ]
    body = [_text(record.get(name), separator=" ") for name in mapping.get("body", [])]
    content = "\n\n".join(part for part in [title, "\n".join(facts), *body] if part)
    return DocumentDraft(
        external_id=_text(record.get(mapping.get("id", ""))) or str(index),
        title=title,
        content=content,
        url=mapping["url"].format(**record) if mapping.get("url") else "",
        metadata={name: record.get(name) for name in mapping.get("metadata", [])},
    )


def _text(value: Any, separator: str = ", ") -> str:
    """A field as text: lists are joined (facts with commas, body steps with spaces)."""
    if value is None:
        return ""
    if isinstance(value, list):
        return separator.join(str(v).strip() for v in value if v is not None)
    return str(value).strip()


def json_file_ingest(
    *, path: Path, mapping: dict[str, Any], source_name: str, progress: Callable[[int], None] | None = None
) -> IngestReport:
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IngestError(f"{path.name}: not a readable JSON file ({exc})") from exc
    if not isinstance(records, list):
        raise IngestError(f"{path.name}: expected a JSON array of records")
    drafts = records_to_drafts(records, mapping)
    source = source_get_or_create(name=source_name, uri=str(path))
    Source.objects.filter(pk=source.pk).update(status=Source.Status.PROCESSING, error="")
    report = documents_upsert(source=source, drafts=drafts, progress=progress)
    Source.objects.filter(pk=source.pk).update(status=Source.Status.READY)
    return report
