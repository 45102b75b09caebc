"""Writes to the knowledge base: sources, documents, chunks, embedding spaces and the KB version."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from .chunking import HEADING_SEPARATOR, ChunkDraft, chunk_text
from .embeddings import ModelSpec, configured_spec, embed_texts, forget_active_space
from .fts import fts_config
from .links import url_for_storage
from .models import Chunk, ChunkEmbedding, Document, EmbeddingSpace, KnowledgeBaseVersion, Source
from .parsers import DocumentDraft, IngestError, detect_format, parse_file
from .selectors import embedding_space_active, kb_version
from .signals import documents_changed

logger = logging.getLogger(__name__)


@dataclass
class IngestReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks_written: int = 0
    warnings: list[str] = field(default_factory=list)  # what was dropped without failing the source

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.removed)


# --- knowledge-base version -----------------------------------------------------------------------


def kb_version_bump() -> None:
    """Called inside the transaction that changes what search can return, so both commit together."""
    updated = KnowledgeBaseVersion.objects.filter(pk=1).update(version=F("version") + 1, updated_at=timezone.now())
    if not updated:
        KnowledgeBaseVersion.objects.get_or_create(pk=1, defaults={"version": 2})
    # Now for this thread (it reads its own transaction), again on commit for the threads that
    # read the old version in between.
    kb_version.cache_clear()
    transaction.on_commit(kb_version.cache_clear)


@transaction.atomic
def lexeme_stats_refresh() -> None:
    """Recount how many chunks hold each lexeme (the full-text IDF). Searches keep reading the old
    counts until this commits; being a little stale only nudges ranks."""
    KnowledgeBaseVersion.objects.get_or_create(pk=1)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM knowledge_lexemestat")
        cursor.execute(
            "INSERT INTO knowledge_lexemestat (lexeme, chunk_count) "
            "SELECT word, ndoc FROM ts_stat("
            "'SELECT search_vector FROM knowledge_chunk WHERE search_vector IS NOT NULL')"
        )
        cursor.execute(
            "UPDATE knowledge_knowledgebaseversion SET chunks_indexed = (SELECT count(*) FROM knowledge_chunk)"
        )


# --- sources --------------------------------------------------------------------------------------


def source_upsert(
    *, name: str, uri: str = "", fmt: str = "", mapping: dict[str, Any] | None = None, language: str = "",
    tags: Sequence[str] = (), upload: Any = None,
) -> Source:
    """Create or update a source by name and queue it (the caller starts the ingest task).

    Raises IngestError, before anything is stored, for a file type no parser reads."""
    filename = Path(upload.name).name if upload is not None else Path(uri or name).name
    fmt = fmt or detect_format(filename)
    source, _ = Source.objects.get_or_create(name=name)
    if upload is not None:
        source.file.save(filename, upload, save=False)
    source.uri = uri or filename
    source.format = fmt
    source.mapping = mapping
    source.language = language or settings.KNOWLEDGE_DEFAULT_LANGUAGE
    source.tags = list(tags)
    source.status = Source.Status.QUEUED
    source.error = ""
    source.progress_done = source.progress_total = 0
    source.save()
    return source


def source_read_bytes(source: Source) -> tuple[str, bytes]:
    """The file behind a source: its upload, else the local path it was registered with."""
    try:
        if source.file:
            with source.file.open("rb") as handle:
                return Path(source.file.name or "upload").name, handle.read()
        return Path(source.uri).name, Path(source.uri).read_bytes()
    except OSError as exc:
        raise IngestError(f"{source.uri or source.name}: cannot read the file ({exc.strerror or exc})") from exc


def source_ingest(*, source_id: int, progress: Callable[[int, int], None] | None = None) -> IngestReport:
    """Parse a source's file and index what changed. A bad file fails the source and changes nothing."""
    source = Source.objects.get(pk=source_id)
    Source.objects.filter(pk=source.pk).update(status=Source.Status.PROCESSING, error="", progress_done=0)
    try:
        filename, data = source_read_bytes(source)
        drafts = parse_file(filename=filename, data=data, fmt=source.format, mapping=source.mapping)
        drafts = [_with_source_tags(d, source.tags) for d in drafts]
        report = documents_sync(source=source, drafts=drafts, progress=progress)
    except IngestError as exc:
        source_fail(source_id=source.pk, error=str(exc))
        raise
    except Exception as exc:
        logger.exception("ingest of source %s failed", source.pk)
        source_fail(source_id=source.pk, error=f"internal error: {exc}")
        raise
    if report.changed:
        lexeme_stats_refresh()
    Source.objects.filter(pk=source.pk).update(status=Source.Status.READY, ingested_at=timezone.now())
    return report


def source_fail(*, source_id: int, error: str) -> None:
    Source.objects.filter(pk=source_id).update(status=Source.Status.FAILED, error=error[:5000])


def _with_source_tags(draft: DocumentDraft, tags: Sequence[str]) -> DocumentDraft:
    if not tags:
        return draft
    return DocumentDraft(**{**draft.__dict__, "tags": tuple(dict.fromkeys([*tags, *draft.tags]))})


@transaction.atomic
@transaction.atomic
def source_delete(*, source: Source) -> None:
    """Remove a source, its documents and their chunks; answers cached on them are dropped."""
    documents_changed.send(sender=Source, document_ids=list(source.documents.values_list("pk", flat=True)))
    source.delete()
    kb_version_bump()
    lexeme_stats_refresh()


# --- documents ------------------------------------------------------------------------------------


def documents_sync(
    *, source: Source, drafts: Sequence[DocumentDraft], progress: Callable[[int, int], None] | None = None
) -> IngestReport:
    """Make a source hold exactly these documents: new and changed ones indexed, gone ones removed."""
    report = documents_upsert(source=source, drafts=drafts, progress=progress)
    wanted = {d.external_id for d in drafts}
    gone = list(Document.objects.filter(source=source).exclude(external_id__in=wanted).values_list("pk", flat=True))
    if gone:
        with transaction.atomic():
            documents_changed.send(sender=Document, document_ids=gone)
            Document.objects.filter(pk__in=gone).delete()
            kb_version_bump()
    report.removed = len(gone)
    source_refresh_counts(source=source)
    return report


def documents_upsert(
    *, source: Source, drafts: Sequence[DocumentDraft], progress: Callable[[int, int], None] | None = None
) -> IngestReport:
    """Index new and changed documents; skip unchanged ones (same content hash).

    Embedding happens before any transaction opens; each changed document then swaps its
    chunks (and bumps the knowledge-base version) in one transaction, so a search never sees it
    half-indexed.
    """
    drafts, warnings = _with_web_urls(drafts)
    report = IngestReport(warnings=warnings)
    known = dict(Document.objects.filter(source=source).values_list("external_id", "content_hash"))
    changed = [d for d in drafts if known.get(d.external_id) != d.content_hash]
    report.unchanged = len(drafts) - len(changed)
    done = report.unchanged
    _progress(source, done, len(drafts), progress)
    for batch in _batches(changed, 64):
        chunked = [(draft, _chunk(draft)) for draft in batch]
        vectors = _embed_live_spaces([_embedding_input(d, c) for d, chunks in chunked for c in chunks])
        offset = 0
        for draft, chunks in chunked:
            chunk_vectors = {space: vs[offset : offset + len(chunks)] for space, vs in vectors.items()}
            offset += len(chunks)
            created = _document_replace(source, draft, chunks, chunk_vectors)
            report.created += created
            report.updated += not created
            report.chunks_written += len(chunks)
        done += len(batch)
        _progress(source, done, len(drafts), progress)
    return report


def _with_web_urls(drafts: Sequence[DocumentDraft]) -> tuple[list[DocumentDraft], list[str]]:
    """A document URL that is not http(s) is dropped (the document keeps its page on this site) and
    reported: one bad link does not fail a whole source."""
    kept: list[DocumentDraft] = []
    warnings: list[str] = []
    for draft in drafts:
        try:
            url = url_for_storage(draft.url)
        except ValueError as exc:
            warnings.append(f"document {draft.external_id!r}: URL dropped, {exc}")
            url = ""
        kept.append(draft if url == draft.url else replace(draft, url=url))
    if warnings:
        logger.warning("ingest: %d document URLs dropped, the first: %s", len(warnings), warnings[0])
    return kept, warnings


def _progress(source: Source, done: int, total: int, callback: Callable[[int, int], None] | None) -> None:
    Source.objects.filter(pk=source.pk).update(progress_done=done, progress_total=total)
    if callback:
        callback(done, total)


def _batches(items: Sequence[DocumentDraft], size: int) -> Iterable[Sequence[DocumentDraft]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _chunk(draft: DocumentDraft) -> list[ChunkDraft]:
    return chunk_text(
        draft.content,
        max_tokens=settings.KNOWLEDGE_CHUNK_TOKENS,
        overlap_tokens=settings.KNOWLEDGE_CHUNK_OVERLAP_TOKENS,
        markdown=draft.markdown,
    )


def _embedding_input(draft: DocumentDraft, chunk: ChunkDraft) -> str:
    # A chunk deep inside a document does not repeat its title or headings; the embedding needs them.
    context = HEADING_SEPARATOR.join(h for h in (draft.title, *chunk.headings) if h and h not in chunk.text[:200])
    return f"{context}\n{chunk.text}" if context else chunk.text


def _embed_live_spaces(texts: list[str]) -> dict[int, list[list[float]]]:
    """Vectors for every space searches read now or soon: the active one and one being built."""
    return {space.pk: embed_texts(texts, _spec(space)) for space in embedding_spaces_live()}


@transaction.atomic
def _document_replace(
    source: Source, draft: DocumentDraft, chunks: list[ChunkDraft], vectors: dict[int, list[list[float]]]
) -> bool:
    document, created = Document.objects.select_for_update().update_or_create(
        source=source,
        external_id=draft.external_id,
        defaults={
            "title": draft.title[:500],
            "url": draft.url,
            "content": draft.content,
            "content_hash": draft.content_hash,
            "metadata": draft.metadata,
            "language": source.language,
            "tags": list(draft.tags),
        },
    )
    if not created:
        documents_changed.send(sender=Document, document_ids=[document.pk])
    document.chunks.all().delete()
    rows = Chunk.objects.bulk_create(
        Chunk(document=document, ordinal=i, heading=c.heading[:1000], text=c.text, token_count=c.token_count)
        for i, c in enumerate(chunks)
    )
    ChunkEmbedding.objects.bulk_create(
        ChunkEmbedding(space_id=space_id, chunk=row, embedding=vector)
        for space_id, space_vectors in vectors.items()
        for row, vector in zip(rows, space_vectors, strict=True)
    )
    _search_vectors_fill(document)
    kb_version_bump()
    return created


def _search_vectors_fill(document: Document) -> None:
    """Title and headings weigh A, the text B, in the document language's text-search configuration."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE knowledge_chunk SET search_vector =
                setweight(to_tsvector(%s::regconfig, %s || ' ' || heading), 'A')
                || setweight(to_tsvector(%s::regconfig, text), 'B')
            WHERE document_id = %s
            """,
            [fts_config(document.language), document.title, fts_config(document.language), document.pk],
        )


def source_refresh_counts(*, source: Source) -> None:
    Source.objects.filter(pk=source.pk).update(
        document_count=Document.objects.filter(source=source).count(),
        chunk_count=Chunk.objects.filter(document__source=source).count(),
    )


# --- embedding spaces -----------------------------------------------------------------------------


def _spec(space: EmbeddingSpace) -> ModelSpec:
    return ModelSpec(space.backend, space.model, space.dimensions)


def embedding_spaces_live() -> list[EmbeddingSpace]:
    embedding_space_ensure()  # the first ingest creates the first space
    return list(EmbeddingSpace.objects.exclude(status=EmbeddingSpace.Status.RETIRED).order_by("pk"))


def embedding_space_ensure() -> EmbeddingSpace:
    """The active space, created for the configured model when there is none yet (the first ingest)."""
    space = embedding_space_active()
    if space is not None:
        return space
    spec = configured_spec()
    with transaction.atomic():
        space, created = EmbeddingSpace.objects.get_or_create(
            status=EmbeddingSpace.Status.ACTIVE,
            defaults={"backend": spec.backend, "model": spec.model, "dimensions": spec.dimensions,
                      "activated_at": timezone.now()},
        )
    if created:
        space_index_create(space)
    return space


def space_index_create(space: EmbeddingSpace) -> None:
    """A partial HNSW index over this space's rows, cast to its dimensions (cosine)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {space.index_name} ON knowledge_chunkembedding "
            f"USING hnsw ({space.vector_expression()} vector_cosine_ops) "
            f"WITH (m = {int(settings.KNOWLEDGE_HNSW_M)}, "
            f"ef_construction = {int(settings.KNOWLEDGE_HNSW_EF_CONSTRUCTION)}) "
            f"WHERE space_id = {int(space.pk)}"
        )


def embedding_model_sync() -> EmbeddingSpace | None:
    """Start building a space for the configured model if it is not the active one.

    Returns the space that needs building (new, or one whose build was interrupted), else None.
    """
    active = embedding_space_ensure()
    spec = configured_spec()
    if _spec(active) == spec:
        EmbeddingSpace.objects.filter(status=EmbeddingSpace.Status.BUILDING).update(
            status=EmbeddingSpace.Status.RETIRED
        )
        return None
    building = EmbeddingSpace.objects.filter(status=EmbeddingSpace.Status.BUILDING).first()
    if building is not None and _spec(building) != spec:
        space_retire(space=building)
        building = None
    if building is None:
        building = EmbeddingSpace.objects.create(
            backend=spec.backend, model=spec.model, dimensions=spec.dimensions
        )
    return building


def space_fill(
    *, space: EmbeddingSpace, batch_size: int = 256, progress: Callable[[int, int], None] | None = None
) -> int:
    """Embed every chunk the space has no vector for; returns how many were embedded."""
    spec = _spec(space)
    embedded = 0
    while True:
        missing = _chunks_without_vector(space, limit=batch_size)
        if progress or space.status == EmbeddingSpace.Status.BUILDING:
            total = Chunk.objects.count()
            done = ChunkEmbedding.objects.filter(space=space).count()
            EmbeddingSpace.objects.filter(pk=space.pk).update(progress_done=done, progress_total=total)
            if progress:
                progress(done, total)
        if not missing:
            return embedded
        vectors = embed_texts([_stored_embedding_input(c) for c in missing], spec)
        ChunkEmbedding.objects.bulk_create(
            [ChunkEmbedding(space=space, chunk=c, embedding=v) for c, v in zip(missing, vectors, strict=True)],
            ignore_conflicts=True,  # a chunk (re)written by ingestion meanwhile already has its vector
        )
        embedded += len(missing)


def space_build(
    *, space_id: int, batch_size: int = 256, progress: Callable[[int, int], None] | None = None
) -> list[EmbeddingSpace]:
    """Embed every chunk into a building space, index it, then make it the active space.

    Searches read the old space until the switch, which is one transaction. Chunks written
    meanwhile are embedded into both spaces by ingestion. Returns the spaces it retired (their
    vectors are purged later, once no process still embeds queries for them).
    """
    space = EmbeddingSpace.objects.get(pk=space_id)
    if space.status != EmbeddingSpace.Status.BUILDING:
        return []
    space_fill(space=space, batch_size=batch_size, progress=progress)
    space_index_create(space)
    with transaction.atomic():
        still_building = EmbeddingSpace.objects.select_for_update().filter(
            pk=space.pk, status=EmbeddingSpace.Status.BUILDING
        )
        if not still_building.exists():
            return []  # superseded while it was being built
        old = list(EmbeddingSpace.objects.select_for_update().filter(status=EmbeddingSpace.Status.ACTIVE))
        EmbeddingSpace.objects.filter(pk__in=[s.pk for s in old]).update(status=EmbeddingSpace.Status.RETIRED)
        EmbeddingSpace.objects.filter(pk=space.pk).update(
            status=EmbeddingSpace.Status.ACTIVE, activated_at=timezone.now()
        )
        kb_version_bump()
    forget_active_space()
    # A chunk whose ingest began before this space existed may have missed it: catch up now.
    space_fill(space=EmbeddingSpace.objects.get(pk=space.pk))
    return old


def _chunks_without_vector(space: EmbeddingSpace, limit: int) -> list[Chunk]:
    return list(
        Chunk.objects.select_related("document")
        .exclude(embeddings__space=space)
        .order_by("pk")
        .only("pk", "text", "heading", "document__title")[:limit]
    )


def _stored_embedding_input(chunk: Chunk) -> str:
    headings = tuple(h for h in chunk.heading.split(HEADING_SEPARATOR) if h)
    return _embedding_input(
        DocumentDraft(external_id="", title=chunk.document.title, content=""),
        ChunkDraft(text=chunk.text, token_count=0, headings=headings),
    )


def space_retire(*, space: EmbeddingSpace) -> None:
    """Drop a space's index and vectors. Called some time after the switch, so that processes which
    cached the old space for a moment have moved on."""
    EmbeddingSpace.objects.filter(pk=space.pk).exclude(status=EmbeddingSpace.Status.ACTIVE).update(
        status=EmbeddingSpace.Status.RETIRED
    )
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {space.index_name}")
    ChunkEmbedding.objects.filter(space=space).delete()
