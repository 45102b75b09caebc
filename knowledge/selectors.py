"""Reads from the knowledge base: search."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.urls import reverse
from pgvector.django import CosineDistance

from .models import Chunk, Document


@dataclass(frozen=True)
class SearchHit:
    chunk_id: int
    document_id: int
    title: str
    url: str
    text: str
    score: float  # cosine similarity, 1 is identical


def document_url(document: Document) -> str:
    return document.url or reverse("knowledge-document", args=[document.pk])


def chunk_search_dense(*, embedding: Sequence[float], k: int | None = None) -> list[SearchHit]:
    """Nearest chunks by cosine distance through the HNSW index."""
    k = k or settings.KNOWLEDGE_TOP_K
    # hnsw.ef_search is set on every connection (settings.DATABASES options); k must not exceed it.
    k = min(k, settings.KNOWLEDGE_HNSW_EF_SEARCH)
    chunks = list(
        Chunk.objects.select_related("document")
        .annotate(distance=CosineDistance("embedding", list(embedding)))
        .order_by("distance")[:k]
    )
    return [
        SearchHit(
            chunk_id=c.pk,
            document_id=c.document_id,
            title=c.document.title,
            url=document_url(c.document),
            text=c.text,
            score=round(1.0 - float(c.distance), 4),
        )
        for c in chunks
    ]
