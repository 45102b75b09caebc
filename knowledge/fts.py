"""Full-text search settings shared by the write side (indexing) and the read side (search)."""

from django.conf import settings


def fts_config(language: str) -> str:
    """PostgreSQL's text-search configuration for a language ("en-GB" → english); "simple" if none."""
    return settings.KNOWLEDGE_FTS_CONFIGS.get(language.split("-")[0].lower(), "simple")
