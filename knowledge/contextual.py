"""Reads for a query made from a conversation: which words of earlier turns say what it is about.

A follow-up ("What muscles does it work?") is searched together with words of the turns before it;
only words this knowledge base can tell apart help, so each is weighed by its IDF (the statistics
`knowledge.selectors.query_terms` ranks with), and a word that names documents (it is in their
titles or headings) marks a question that names its own subject.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from .fts import fts_config


@dataclass(frozen=True)
class WordWeight:
    word: str  # as written
    lexeme: str
    idf: float
    chunks: int  # how many chunks hold it: 0, the knowledge base does not know the word
    names_documents: bool  # in some document's title or headings


_IDF = (
    "ln(1 + greatest(n.total - coalesce(s.chunk_count, 0), 0) + 0.5) - ln(coalesce(s.chunk_count, 0) + 0.5)"
)


def word_weights(words: Sequence[str], language: str | None = None) -> list[WordWeight]:
    """The words that are not stop words, in their order, each with its lexeme's weight; one statement.
    A word with two lexemes (a hyphenated one) counts once per lexeme."""
    if not words:
        return []
    sql = (
        f"SELECT w.word, t.lexeme, {_IDF}, coalesce(s.chunk_count, 0), "
        "EXISTS (SELECT 1 FROM knowledge_chunk c WHERE c.search_vector @@ "
        "(quote_literal(t.lexeme) || ':A')::tsquery) "
        "FROM unnest(%s::text[]) WITH ORDINALITY AS w(word, position) "
        "CROSS JOIN LATERAL unnest(tsvector_to_array(to_tsvector(%s::regconfig, w.word))) AS t(lexeme) "
        "LEFT JOIN knowledge_lexemestat s ON s.lexeme = t.lexeme, "
        "(SELECT greatest(coalesce(max(chunks_indexed), 0), 1) AS total FROM knowledge_knowledgebaseversion) n "
        "ORDER BY w.position"
    )
    config = fts_config(language or settings.KNOWLEDGE_DEFAULT_LANGUAGE)
    with connection.cursor() as cursor:
        cursor.execute(sql, [list(words), config])
        return [WordWeight(word, lexeme, float(idf), chunks, named) for word, lexeme, idf, chunks, named in cursor]
