"""Reads from the knowledge base: hybrid search.

Two retrievers each propose candidates: dense (pgvector HNSW, cosine, in the active embedding
space) and lexical (PostgreSQL full-text search over a weighted tsvector with a GIN index). Every
candidate then gets both scores and the union is ranked by a fusion: a weighted sum of the cosine
and the normalised full-text score by default, reciprocal-rank fusion as the alternative
(bench/retrieval.py compares them), optionally re-ordered for diversity (MMR).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Literal

import cachetools.func
import numpy as np
from django.conf import settings
from django.db import connection
from django.urls import reverse

from .embeddings import QueryVector
from .fts import fts_config
from .links import web_url
from .models import EmbeddingSpace, KnowledgeBaseVersion, vector_expression

Mode = Literal["hybrid", "dense", "lexical"]


@dataclass(frozen=True)
class SearchFilters:
    source_ids: tuple[int, ...] = ()
    tags: tuple[str, ...] = ()  # a document matches when it has any of them
    language: str | None = None


@dataclass(frozen=True)
class SearchHit:
    chunk_id: int
    document_id: int
    title: str
    url: str
    text: str
    score: float  # the fused score, 0..1 (1 = ranked first by every retriever, or a perfect match)
    heading: str = ""
    dense_score: float = 0.0  # cosine similarity, 1 is identical
    lexical_score: float = 0.0  # IDF-weighted full-text rank (BM25-like), 0 when no query term matches
    source_id: int | None = None
    embedding: tuple[float, ...] | None = field(default=None, repr=False, compare=False)
    token_count: int = 0  # the chunk's tokens (knowledge.tokens), counted when it was written; 0: unknown
    language: str = ""  # its document's


def document_url(url: str, document_id: int) -> str:
    """A document's own http(s) URL, else its page in this site (a row stored before URLs were checked
    may hold any scheme)."""
    return web_url(url) or reverse("knowledge-document", args=[document_id])


# Read for every answer (it scopes the answer cache), so kept per process this long: a bump made
# in this process is seen at once (kb_version_bump forgets it), one made elsewhere within this time.
KB_VERSION_CACHE_SECONDS = 2.0


@cachetools.func.ttl_cache(maxsize=1, ttl=KB_VERSION_CACHE_SECONDS)
def kb_version() -> int:
    row = KnowledgeBaseVersion.objects.filter(pk=1).values_list("version", flat=True).first()
    return row or 1


def embedding_space_active() -> EmbeddingSpace | None:
    """The space searches read; None before the first ingest."""
    return EmbeddingSpace.objects.filter(status=EmbeddingSpace.Status.ACTIVE).first()


@dataclass(frozen=True)
class FullTextSide:
    """The half of a hybrid search that needs no embedding: the query's lexemes and the chunks
    the full-text retriever proposes, best first."""

    terms: list[Term]
    ids: list[int]


def _candidate_count(k: int) -> int:
    return max(settings.KNOWLEDGE_CANDIDATES, k)


def search_full_text(
    query: str, *, k: int | None = None, filters: SearchFilters = SearchFilters(), mode: Mode = "hybrid"
) -> FullTextSide:
    """Run it while the query is being embedded, then hand it to `search`."""
    terms = query_terms(query, filters.language) if query.strip() else []
    use_lexical = mode != "dense" and bool(query.strip())
    n = _candidate_count(k or settings.KNOWLEDGE_TOP_K)
    return FullTextSide(terms, _lexical_candidates(query, n, filters, terms) if use_lexical else [])


def search(
    *,
    query: str,
    vector: QueryVector | None,
    k: int | None = None,
    filters: SearchFilters = SearchFilters(),
    min_score: float | None = None,
    diverse: bool = False,
    mode: Mode = "hybrid",
    fusion: str | None = None,
    full_text: FullTextSide | None = None,
    prefer_language: str = "",
) -> list[SearchHit]:
    """The top k chunks for a query; `vector` is the query embedded in the active space (None:
    the full-text retriever alone). `full_text`: that half already run (`search_full_text`, same
    query, k, filters and mode), for instance while the query was being embedded. `prefer_language`:
    chunks in it rank ahead of others that score less than KNOWLEDGE_LANGUAGE_PREFERENCE above them."""
    k = k or settings.KNOWLEDGE_TOP_K
    if full_text is None:
        full_text = search_full_text(query, k=k, filters=filters, mode=mode)
    terms, lexical_ids = full_text.terms, full_text.ids
    use_dense = mode != "lexical" and vector is not None
    dense = _dense_candidates_sql(vector, _candidate_count(k), filters) if use_dense and vector else None
    dense_ids, candidates = _candidate_rows(lexical_ids, terms, vector, with_vectors=diverse, dense=dense)
    if mode == "hybrid":
        ranked = _fuse(candidates, dense_ids, lexical_ids, fusion or settings.KNOWLEDGE_FUSION)
    else:  # one retriever: its own order, its own score (the other is shown, not used)
        ranked = _single(candidates, dense_ids or lexical_ids, by_dense=mode == "dense")
    threshold = settings.KNOWLEDGE_MIN_SCORE if min_score is None else min_score
    ranked = [hit for hit in ranked if hit.score >= threshold]
    if prefer_language:
        ranked = language_preferred(ranked, prefer_language)
    if diverse:
        ranked = mmr(ranked, k, settings.KNOWLEDGE_MMR_LAMBDA)
    # URLs for the hits returned only: reverse() is slow enough to matter per candidate.
    return [replace(hit, embedding=None, url=document_url(hit.url, hit.document_id)) for hit in ranked[:k]]


# --- retrievers -----------------------------------------------------------------------------------


def _filter_sql(filters: SearchFilters, params: list) -> str:
    clauses = []
    if filters.source_ids:
        clauses.append("d.source_id = ANY(%s)")
        params.append(list(filters.source_ids))
    if filters.tags:
        clauses.append("d.tags && %s::varchar[]")
        params.append(list(filters.tags))
    if filters.language:
        clauses.append("d.language = %s")
        params.append(filters.language)
    return "".join(f" AND {c}" for c in clauses)


def _dense_candidates_sql(vector: QueryVector, n: int, filters: SearchFilters) -> tuple[str, list]:
    """Nearest chunks through the space's partial HNSW index (space id and size are literals so
    the planner matches the index expression and predicate): the statement and its parameters."""
    dims, space = int(vector.dimensions), int(vector.space_id)
    filter_params: list = []
    where = _filter_sql(filters, filter_params)
    joins = ""
    if where:
        joins = " JOIN knowledge_chunk c ON c.id = e.chunk_id JOIN knowledge_document d ON d.id = c.document_id"
    sql = (
        f"SELECT e.chunk_id FROM knowledge_chunkembedding e{joins} "
        f"WHERE e.space_id = {space}{where} "
        f"ORDER BY {vector_expression(space, dims, 'e')} <=> %s::vector({dims}) LIMIT %s"
    )
    return sql, [*filter_params, vector.literal(), n]


# websearch syntax a person typed on purpose: "exact phrase", -excluded, OR
_OPERATORS = re.compile(r"\"|(^|\s)-\w|\sOR\s")


@dataclass(frozen=True)
class Term:
    lexeme: str
    idf: float
    chunks: int  # how many chunks hold it


def query_terms(query: str, language: str | None) -> list[Term]:
    """The query's lexemes with their inverse document frequency (BM25's IDF) from LexemeStat,
    rarest first. A lexeme the statistics have not seen yet counts as rare."""
    sql = (
        "SELECT t.lexeme, ln(1 + greatest(n.total - coalesce(s.chunk_count, 0), 0) + 0.5) "
        "- ln(coalesce(s.chunk_count, 0) + 0.5) AS idf, coalesce(s.chunk_count, 0) "
        "FROM unnest(tsvector_to_array(to_tsvector(%s::regconfig, %s))) AS t(lexeme) "
        "LEFT JOIN knowledge_lexemestat s ON s.lexeme = t.lexeme, "
        "(SELECT greatest(coalesce(max(chunks_indexed), 0), 1) AS total FROM knowledge_knowledgebaseversion) n "
        "ORDER BY idf DESC, t.lexeme"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [fts_config(language or settings.KNOWLEDGE_DEFAULT_LANGUAGE), query])
        return [Term(lexeme, float(idf), chunks) for lexeme, idf, chunks in cursor.fetchall()]


def _lexeme(term: Term) -> str:
    """A lexeme as a tsquery literal (quoted: any character is safe)."""
    return "'" + term.lexeme.replace("'", "''") + "'"


def _lexical_score(terms: list[Term], column: str = "c.search_vector") -> tuple[str, list]:
    """Each query lexeme's ts_rank (term frequency, saturating, title and headings weighted above
    the body) scaled by its IDF: BM25's shape inside PostgreSQL. Written out per lexeme (no
    subquery per row). No length normalisation: chunks are already of similar size, and dividing
    by their length ranks worse on bench/retrieval.py."""
    if not terms:
        return "0", []
    parts = " + ".join(f"%s * ts_rank({column}, %s::tsquery)" for _ in terms)
    return f"({parts})", [p for t in terms for p in (t.idf, _lexeme(t))]


# Candidates must hold one of the query's rarest lexemes. Common words still add to the score of
# every candidate but do not make the full-text side read half the index (BM25's own top-k
# algorithms, such as WAND, skip them the same way)...
LEXICAL_MATCH_TERMS = 3
# ... and only lexemes rarer than this IDF (about one chunk in eight) beyond the rarest one: in a
# two-word question the second-rarest word may be in a third of the index ("what are cilia used
# for": "use").
LEXICAL_MIN_IDF = 2.0
# ... while the chunks they match stay under this many (the rarest one always counts): "who leads
# the Islamic State" would otherwise rank every chunk holding "lead" or "state"; "islam" alone is
# selective enough.
LEXICAL_MAX_MATCHES = 2000
# Matches are first ordered by the IDFs of the lexemes they hold (a membership test per lexeme,
# far cheaper than ranking); only this many are ranked in full.
LEXICAL_POOL = 300


def _matching_terms(terms: list[Term]) -> list[Term]:
    """The lexemes a candidate must hold one of: the rarest, then rare ones while few chunks match."""
    chosen: list[Term] = []
    for term in terms[:LEXICAL_MATCH_TERMS]:
        too_many = sum(t.chunks for t in chosen) + term.chunks > LEXICAL_MAX_MATCHES
        if chosen and (term.idf < LEXICAL_MIN_IDF or too_many):
            break
        chosen.append(term)
    return chosen


def _lexical_candidates(query: str, n: int, filters: SearchFilters, terms: list[Term]) -> list[int]:
    if _OPERATORS.search(query):  # what the user typed must match as typed
        match = "c.search_vector @@ websearch_to_tsquery(%s::regconfig, %s)"
        match_params = [fts_config(filters.language or settings.KNOWLEDGE_DEFAULT_LANGUAGE), query]
    else:
        matching = _matching_terms(terms)
        match = "c.search_vector @@ %s::tsquery"
        match_params = [" | ".join(_lexeme(t) for t in matching)]
    if not terms or not match_params[-1]:
        return []
    filter_params: list = []
    where = _filter_sql(filters, filter_params)
    join = " JOIN knowledge_document d ON d.id = c.document_id" if filter_params else ""
    coverage = " + ".join("(c.search_vector @@ %s::tsquery)::int * %s" for _ in terms)
    coverage_params = [p for t in terms for p in (_lexeme(t), t.idf)]
    score, score_params = _lexical_score(terms, "pool.search_vector")
    sql = (
        f"WITH pool AS (SELECT c.id, c.search_vector FROM knowledge_chunk c{join} "
        f"WHERE {match}{where} ORDER BY {coverage} DESC, c.id LIMIT {LEXICAL_POOL}) "
        f"SELECT pool.id FROM pool ORDER BY {score} DESC, pool.id LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*match_params, *filter_params, *coverage_params, *score_params, n])
        return [row[0] for row in cursor.fetchall()]


def _candidate_rows(
    lexical_ids: list[int], terms: list[Term], vector: QueryVector | None, with_vectors: bool,
    dense: tuple[str, list] | None,
) -> tuple[list[int], list[SearchHit]]:
    """The dense retriever's candidates, nearest first, and every candidate with both scores,
    whichever retriever proposed it: one statement (the dense search `dense` is a CTE of it)."""
    if not lexical_ids and dense is None:
        return [], []
    params: list = []
    if vector is not None:
        dims, space = int(vector.dimensions), int(vector.space_id)
        dense_score = f"1 - ({vector_expression(space, dims, 'e')} <=> %s::vector({dims}))"
        params.append(vector.literal())
        join = f" LEFT JOIN knowledge_chunkembedding e ON e.chunk_id = c.id AND e.space_id = {space}"
        embedding = ", e.embedding::text" if with_vectors else ", NULL"
    else:
        dense_score, join, embedding = "0", "", ", NULL"
    score, score_params = _lexical_score(terms)
    # Joining from the id list makes each candidate one primary-key lookup; with `c.id = ANY(...)`
    # the planner may walk the whole chunk table.
    if dense is None:
        with_dense, wanted, in_dense, dense_params = "", "unnest(%s::bigint[]) AS wanted(id)", "false", []
    else:
        with_dense = f"WITH dense AS MATERIALIZED ({dense[0]}) "
        wanted = "(SELECT chunk_id FROM dense UNION SELECT unnest(%s::bigint[])) AS wanted(id)"
        in_dense, dense_params = "c.id IN (SELECT chunk_id FROM dense)", dense[1]
    sql = (
        f"{with_dense}SELECT c.id, c.document_id, d.title, d.url, c.heading, c.text, d.source_id, "
        f"coalesce({dense_score}, 0), {score}{embedding}, c.token_count, {in_dense}, d.language "
        f"FROM {wanted} JOIN knowledge_chunk c ON c.id = wanted.id "
        f"JOIN knowledge_document d ON d.id = c.document_id{join}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*dense_params, *params, *score_params, lexical_ids])
        rows = cursor.fetchall()
    # The index returns the nearest in order of their exact distance, which the rows carry.
    dense_ids = [row[0] for row in sorted((r for r in rows if r[11]), key=lambda r: (-r[7], r[0]))]
    return dense_ids, [_hit_from_row(row) for row in rows]


def _hit_from_row(row: tuple) -> SearchHit:
    return SearchHit(
        chunk_id=row[0], document_id=row[1], title=row[2], url=row[3], heading=row[4], text=row[5],
        source_id=row[6], dense_score=round(float(row[7]), 4), lexical_score=round(float(row[8]), 4),
        score=0.0, embedding=tuple(float(x) for x in row[9][1:-1].split(",")) if row[9] else None,
        token_count=row[10], language=row[12],
    )


# --- fusion and diversity -------------------------------------------------------------------------


def language_preferred(ranked: list[SearchHit], language: str) -> list[SearchHit]:
    """The visitor's language first where the knowledge base says it nearly as well: a chunk in another
    language keeps its place only when it scores more than KNOWLEDGE_LANGUAGE_PREFERENCE above. With
    nothing in that language the order is unchanged: the others are the fallback, not a penalty."""
    margin = settings.KNOWLEDGE_LANGUAGE_PREFERENCE
    return sorted(ranked, key=lambda hit: -(hit.score + (margin if hit.language == language else 0.0)))


def _fuse(hits: list[SearchHit], dense_ids: list[int], lexical_ids: list[int], fusion: str) -> list[SearchHit]:
    weighted = fusion == "weighted"
    scored = _weighted(hits) if weighted else _rrf(hits, dense_ids, lexical_ids, settings.KNOWLEDGE_RRF_K)
    return sorted(scored, key=lambda h: (-h.score, -h.dense_score, h.chunk_id))


def _top_lexical(hits: list[SearchHit]) -> float:
    """The full-text score has no fixed scale; the best candidate's is the unit."""
    return max((h.lexical_score for h in hits), default=0) or 1


def _single(hits: list[SearchHit], order: list[int], by_dense: bool) -> list[SearchHit]:
    position = {chunk_id: rank for rank, chunk_id in enumerate(order)}
    top_lexical = _top_lexical(hits)
    return [
        replace(hit, score=round(max(hit.dense_score, 0) if by_dense else hit.lexical_score / top_lexical, 4))
        for hit in sorted(hits, key=lambda h: position[h.chunk_id])
    ]


def _rrf(hits: list[SearchHit], dense_ids: list[int], lexical_ids: list[int], rrf_k: int) -> list[SearchHit]:
    """Reciprocal-rank fusion over the ranks each retriever gave, scaled so rank 1 in every
    retriever that ran scores 1."""
    dense_rank = {chunk_id: rank for rank, chunk_id in enumerate(dense_ids, 1)}
    lexical_rank = {chunk_id: rank for rank, chunk_id in enumerate(lexical_ids, 1)}
    retrievers = bool(dense_ids) + bool(lexical_ids) or 1
    best = retrievers / (rrf_k + 1)
    out = []
    for hit in hits:
        raw = sum(1 / (rrf_k + ranks[hit.chunk_id]) for ranks in (dense_rank, lexical_rank) if hit.chunk_id in ranks)
        out.append(replace(hit, score=round(raw / best, 4)))
    return out


def _weighted(hits: list[SearchHit]) -> list[SearchHit]:
    """w·cosine + (1-w)·lexical, the lexical score divided by the best among the candidates."""
    w = settings.KNOWLEDGE_DENSE_WEIGHT
    top_lexical = _top_lexical(hits)
    return [
        replace(hit, score=round(w * max(hit.dense_score, 0) + (1 - w) * hit.lexical_score / top_lexical, 4))
        for hit in hits
    ]


def mmr(hits: list[SearchHit], k: int, lambda_: float) -> list[SearchHit]:
    """Maximal marginal relevance: each next hit trades relevance for being unlike those chosen."""
    with_vectors = [h for h in hits if h.embedding is not None]
    if len(with_vectors) < 2:
        return hits
    vectors = np.array([h.embedding for h in with_vectors], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-9
    relevance = np.array([h.score for h in with_vectors])
    chosen: list[int] = [0]
    remaining = list(range(1, len(with_vectors)))
    while remaining and len(chosen) < k:
        similarity = vectors[remaining] @ vectors[chosen].T
        gains = lambda_ * relevance[remaining] - (1 - lambda_) * similarity.max(axis=1)
        pick = remaining[int(np.argmax(gains))]
        chosen.append(pick)
        remaining.remove(pick)
    return [with_vectors[i] for i in chosen]
